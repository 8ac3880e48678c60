"""What one new order (ORC-1 NW) costs in SQL statements, and that the savings changed nothing.

The rate itself is measured by bench/hl7.py (docs/BENCHMARKS.md); these tests pin the statement
budget of the inbound path so that it cannot grow unnoticed, with the message handled in process
exactly as the MLLP listener hands it over (``handler.handle``: commit, then the ACK).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ris.hl7 import handler, mapping, notifications
from tests.hl7.conftest import orm, read_ack
from worklist.models import AuditEvent, Order, ScheduledProcedureStep, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)

#: A NW with one OBR for a known patient whose visit is unchanged, on SQLite and PostgreSQL:
#: the resend lookup; BEGIN; the message's savepoint; the patient; the visit (savepoint, SELECT,
#: release); order_create's savepoint; all identifiers in one statement; the order (savepoint,
#: INSERT, release); one INSERT each for procedures, steps and audit rows; two releases; the
#: stored message; COMMIT. It was 29 before the counters, audit rows and catalogue were batched.
NEW_ORDER_STATEMENTS = 19


@pytest.fixture(autouse=True)
def _caches_that_do_not_expire_during_a_count(monkeypatch):
    """The catalogue, the routing rules, the SWF.b receivers and the senders' options are
    cached for a few seconds:
    loaded by the first message of a test, not left over from the previous one, and kept for
    the whole test, so that a slow machine cannot expire one in the middle of a count."""
    from worklist import routing

    notifications.forget_swf_b()
    mapping.forget_catalogue()
    routing.forget()
    handler._sender_cache.clear()  # the HL7Sender options (charset, control ID, responses)
    monkeypatch.setattr(handler, "_SENDER_CACHE_SECONDS", 3600.0)
    monkeypatch.setattr(notifications, "_SWF_B_CACHE_SECONDS", 3600.0)
    monkeypatch.setattr(mapping, "CATALOGUE_CACHE_SECONDS", 3600.0)
    monkeypatch.setattr(routing, "CACHE_SECONDS", 3600.0)


def with_procedures(message: bytes, *codes: str) -> bytes:
    """``message`` (from ``orm``) with one more OBR per code, in the same order group."""
    placer = message.split(b"\rOBR|1|", 1)[1].split(b"|", 1)[0].decode()
    extra = "".join(f"OBR|{n}|{placer}||{code}^{code} exam^L\r" for n, code in enumerate(codes, 2))
    return message + extra.encode()


def handle(message: bytes):
    return read_ack(handler.handle(message, "test"))


def statements_of(message: bytes) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert handle(message).code == "AA"
    return len(queries)


def test_a_new_order_for_a_known_patient_takes_a_fixed_number_of_statements(catalogue):
    handle(orm("COST-1", "PL-C1"))  # the patient and the visit now exist, the catalogue is read

    assert statements_of(orm("COST-2", "PL-C2")) == NEW_ORDER_STATEMENTS


def test_more_procedures_in_a_new_order_take_no_more_statements(catalogue):
    handle(with_procedures(orm("COST-3", "PL-C3"), "MRBRAIN", "USABD"))

    three = statements_of(with_procedures(orm("COST-4", "PL-C4"), "MRBRAIN", "USABD"))

    assert three == NEW_ORDER_STATEMENTS
    order = Order.objects.get(placer_order_number="PL-C4")
    steps = ScheduledProcedureStep.objects.filter(requested_procedure__order=order)
    assert sorted(s.modality for s in steps) == ["CT", "MR", "US"]
    # USABD names no station in the catalogue and no routing rule chooses one: it waits for
    # the front desk instead of going to the worklist with an empty Scheduled Station AE Title.
    assert {s.modality: s.status for s in steps} == {
        "CT": StepStatus.SCHEDULED,
        "MR": StepStatus.SCHEDULED,
        "US": StepStatus.UNSCHEDULED,
    }


def test_a_new_order_writes_one_audit_event_per_step_and_one_for_the_order(catalogue):
    handle(with_procedures(orm("AUD-1", "PL-A1"), "MRBRAIN"))

    order = Order.objects.get(placer_order_number="PL-A1")
    steps = ScheduledProcedureStep.objects.filter(requested_procedure__order=order)
    step_events = AuditEvent.objects.filter(action="step.create")
    assert sorted(e.object_id for e in step_events) == sorted(str(s.pk) for s in steps)
    order_event = AuditEvent.objects.get(action="order.create")
    assert order_event.object_id == str(order.pk)
    assert order_event.after["status"] == order.status == "SC"
    assert order_event.after["accession_number"] == order.accession_number


def test_two_procedures_of_one_order_cannot_take_the_same_slot_of_a_station(catalogue):
    catalogue.ct1.allow_overbooking = False
    catalogue.ct1.save()

    ack = handle(with_procedures(orm("SLOT-1", "PL-S1", code="CTHEAD"), "CTHEAD"))

    assert ack.code == "AE"
    assert "CT1 is booked" in ack.error
    assert not Order.objects.exists()


def test_a_procedure_deactivated_in_this_process_is_refused_by_the_next_message(catalogue):
    assert handle(orm("CAT-1", "PL-K1")).code == "AA"

    catalogue.cthead.active = False
    catalogue.cthead.save()

    ack = handle(orm("CAT-2", "PL-K2"))
    assert ack.code == "AE"
    assert "not in the ris procedure catalogue" in ack.error


def test_a_catalogue_edit_made_elsewhere_is_seen_once_the_cache_time_is_over(
    catalogue, monkeypatch
):
    assert handle(orm("CAT-3", "PL-K3")).code == "AA"
    # The web UI runs in another process: its edits send no signal to this one.
    type(catalogue.cthead).objects.filter(pk=catalogue.cthead.pk).update(active=False)
    monkeypatch.setattr(mapping, "CATALOGUE_CACHE_SECONDS", 0.0)  # as if that time had passed

    assert handle(orm("CAT-4", "PL-K4")).code == "AE"


def test_an_unknown_code_is_found_as_soon_as_it_is_added(catalogue):
    assert handle(orm("NEW-1", "PL-N1", code="XRCHEST")).code == "AE"

    type(catalogue.cthead).objects.filter(pk=catalogue.cthead.pk).update(code_value="XRCHEST")

    assert handle(orm("NEW-2", "PL-N2", code="XRCHEST")).code == "AA"


#: The same NW for a patient ris has never seen (the visit is new as well): the mapping looks
#: the patient up once (to follow a merge), then registers it without a second look-up
#: (``services.patient_create``): its savepoint, INSERT, search keys, audit row, release. It was
#: 27 (the registering service looked the patient up again, locked) before.
NEW_PATIENT_ORDER_STATEMENTS = 26


def test_a_new_order_for_a_new_patient_looks_the_patient_up_once(catalogue):
    handle(orm("NEWP-1", "PL-P1", patient_id="P2001"))  # the catalogue is read

    with CaptureQueriesContext(connection) as queries:
        assert handle(orm("NEWP-2", "PL-P2", patient_id="P2002")).code == "AA"

    patient_reads = [
        q["sql"] for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "worklist_patient"' in q["sql"]
        and "P2002" in q["sql"]
    ]
    assert len(patient_reads) == 1, patient_reads
    assert len(queries) == NEW_PATIENT_ORDER_STATEMENTS
