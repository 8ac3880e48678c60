"""What inbound HL7 messages do, end to end: a real ``ris serve``, the hl7 package's client."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from ris.models import InboundMessage
from tests.factories import first_step
from tests.hl7.conftest import orm, read_ack, send
from worklist import services
from worklist.audit import Actor
from worklist.models import Order, Patient, ProcedureType, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)
Status = InboundMessage.Status


def deliver(service, message: bytes, codec: str = "utf-8"):
    return read_ack(send(service.mllp_port, message), codec)


def test_a_resent_message_gets_the_original_ack_and_changes_nothing(hl7_service, catalogue):
    message = orm("DUP-1", "PL-1")
    first = send(hl7_service.mllp_port, message)
    again = send(hl7_service.mllp_port, message)

    assert read_ack(first).code == "AA"
    assert again == first
    assert Order.objects.count() == 1
    original = InboundMessage.objects.get(status=Status.PROCESSED)
    duplicate = InboundMessage.objects.get(status=Status.DUPLICATE)
    assert duplicate.duplicate_of == original


def test_same_control_id_from_another_sender_is_a_new_message(hl7_service, catalogue):
    assert deliver(hl7_service, orm("SAME-1", "PL-1", sender="HIS")).code == "AA"
    assert deliver(hl7_service, orm("SAME-1", "PL-2", sender="LIS")).code == "AA"
    assert Order.objects.count() == 2


def test_cancel_before_new_order_is_refused_with_ae_and_stored(hl7_service, catalogue):
    ack = deliver(hl7_service, orm("CA-1", "PL-404", order_control="CA"))

    assert ack.code == "AE"
    assert "204" in ack.error and "PL-404" in ack.error
    stored = InboundMessage.objects.get(control_id="CA-1")
    assert stored.status == Status.ERROR
    assert "not known" in stored.error
    assert not Order.objects.exists()


def test_cancel_takes_the_steps_off_the_worklist(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-2", "PL-2"))
    ack = deliver(hl7_service, orm("CA-2", "PL-2", order_control="CA"))

    assert ack.code == "AA"
    order = Order.objects.get(placer_order_number="PL-2")
    assert order.status == "CA"
    assert first_step(order).status == StepStatus.CANCELED


def test_discontinue_request_reports_dc(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-3", "PL-3"))
    deliver(hl7_service, orm("DC-3", "PL-3", order_control="DC"))

    order = Order.objects.get(placer_order_number="PL-3")
    assert order.status == "DC"
    assert first_step(order).status == StepStatus.CANCELED


def test_cancel_of_a_started_step_is_refused_and_changes_nothing(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-4", "PL-4"))
    order = Order.objects.get(placer_order_number="PL-4")
    services.step_transition(step=first_step(order), to=StepStatus.STARTED, actor=Actor.ae("CT1"))

    ack = deliver(hl7_service, orm("CA-4", "PL-4", order_control="CA"))

    assert ack.code == "AE"
    assert "already started" in ack.error
    assert first_step(order).status == StepStatus.STARTED


def test_change_order_reschedules_the_step(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-5", "PL-5", start="202612011000"))
    ack = deliver(hl7_service, orm("XO-5", "PL-5", order_control="XO", start="202612021415"))

    assert ack.code == "AA"
    step = first_step(Order.objects.get(placer_order_number="PL-5"))
    assert step.scheduled_start.isoformat() == "2026-12-02T14:15:00+00:00"
    assert step.status == StepStatus.SCHEDULED


def test_unknown_procedure_code_is_kept_and_reprocessed_after_the_catalogue_fix(
    hl7_service, catalogue
):
    message = orm("NW-6", "PL-6", code="XRCHEST")
    ack = deliver(hl7_service, message)
    assert ack.code == "AE"
    assert "103" in ack.error and "XRCHEST" in ack.error
    assert not Order.objects.exists()
    stored = InboundMessage.objects.get(control_id="NW-6")
    assert stored.status == Status.ERROR

    ProcedureType.objects.create(
        code_value="XRCHEST", code_scheme="L", code_meaning="Chest X-ray", modality="DX"
    )
    call_command("hl7_reprocess")

    stored.refresh_from_db()
    assert stored.status == Status.PROCESSED
    assert stored.reprocess_count == 1
    order = Order.objects.get(placer_order_number="PL-6")
    assert stored.order == order
    # A resend of the same MSH-10 now gets the answer that holds, and still changes nothing.
    assert deliver(hl7_service, message).code == "AA"
    assert Order.objects.count() == 1


def test_new_order_with_a_known_placer_number_is_refused_as_duplicate(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-7", "PL-7"))
    ack = deliver(hl7_service, orm("NW-7b", "PL-7"))

    assert ack.code == "AE"
    assert "205" in ack.error
    assert Order.objects.count() == 1


def adt(control_id: str, event: str, pid: str, name: str, extra: list[str] = ()) -> bytes:
    segments = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ADT^{event}^ADT_A01|{control_id}|P|2.5.1",
        f"EVN|{event}|20261130120000",
        f"PID|1||{pid}^^^HOSP^MR||{name}||19700101|F",
        "PV1|1|I|W1^12^B",
        *extra,
    ]
    return ("\r".join(segments) + "\r").encode()


def test_a04_registers_and_a08_updates_the_patient(hl7_service, catalogue):
    assert deliver(hl7_service, adt("ADT-1", "A04", "P77", "Doe^Jane")).code == "AA"
    deliver(hl7_service, orm("NW-8", "PL-8", patient_id="P77", name="Doe^Jane"))

    assert deliver(hl7_service, adt("ADT-2", "A08", "P77", "Smith^Jane^Ann")).code == "AA"

    patient = Patient.objects.get(patient_id="P77")
    assert patient.name_alphabetic == "Smith^Jane^Ann"
    order = Order.objects.get(placer_order_number="PL-8")
    assert order.patient == patient  # every open step shows the new name through its patient


def test_a40_merge_moves_every_order_to_the_surviving_patient(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-9", "PL-9", patient_id="OLD-1", name="Doe^J"))
    deliver(hl7_service, orm("NW-10", "PL-10", patient_id="NEW-1", name="Doe^Jane"))

    ack = deliver(
        hl7_service, adt("ADT-40", "A40", "NEW-1", "Doe^Jane", ["MRG|OLD-1^^^HOSP^MR"])
    )

    assert ack.code == "AA"
    survivor = Patient.objects.get(patient_id="NEW-1")
    merged = Patient.objects.get(patient_id="OLD-1")
    assert merged.merged_into == survivor
    assert set(Order.objects.values_list("patient__patient_id", flat=True)) == {"NEW-1"}
    # A later order for the merged-away ID lands on the survivor.
    deliver(hl7_service, orm("NW-11", "PL-11", patient_id="OLD-1", name="Doe^J"))
    assert Order.objects.get(placer_order_number="PL-11").patient == survivor


def test_a03_discharge_ends_the_visit(hl7_service, catalogue):
    deliver(hl7_service, adt("ADT-3", "A01", "P3", "Doe^Jane"))
    ack = deliver(
        hl7_service,
        adt("ADT-4", "A03", "P3", "Doe^Jane").replace(
            b"PV1|1|I|W1^12^B", b"PV1|1|I|W1^12^B" + b"|" * 42 + b"20261201093000"
        ),
    )

    assert ack.code == "AA"
    visit = Patient.objects.get(patient_id="P3").visits.get()
    assert visit.discharged_at.isoformat() == "2026-12-01T09:30:00+00:00"


def test_unsupported_message_type_gets_ar_200_and_is_stored(hl7_service, catalogue):
    message = orm("ORU-1", "PL-12").replace(b"ORM^O01", b"ORU^R01")
    ack = deliver(hl7_service, message)

    assert ack.code == "AR"
    assert "200" in ack.error
    assert InboundMessage.objects.get(control_id="ORU-1").status == Status.REJECTED


def test_unsupported_version_gets_ar_203(hl7_service, catalogue):
    ack = deliver(hl7_service, orm("V22-1", "PL-13", version="2.2"))
    assert ack.code == "AR"
    assert "203" in ack.error


def test_bytes_that_do_not_fit_the_character_set_get_ar_and_change_nothing(
    hl7_service, catalogue
):
    # Latin-1 "é" with an empty MSH-18 and no sender default: not ASCII, so not guessable.
    message = orm("ENC-1", "PL-14", name="Ren\xe9^Anne").replace(b"Ren\\xe9", b"x")
    message = message.replace("Ren\xe9".encode(), "Ren\xe9".encode("latin-1"))
    ack = deliver(hl7_service, message, "latin-1")

    assert ack.code == "AR"
    assert "MSH-18" in ack.text
    assert not Patient.objects.exists()


def test_omg_v251_with_tq1_creates_the_order(hl7_service, catalogue):
    ack = deliver(hl7_service, orm("OMG-1", "PL-15", version="2.5.1", start="202612051200"))

    assert ack.code == "AA"
    step = first_step(Order.objects.get(placer_order_number="PL-15"))
    assert step.scheduled_start.isoformat() == "2026-12-05T12:00:00+00:00"


def test_many_messages_on_one_connection_are_applied_in_order(hl7_service, catalogue):
    from hl7.client import MLLPClient

    from tests.hl7.conftest import receive_all, unframe

    messages = [orm(f"SEQ-{i}", f"PL-S{i}") for i in range(10)]
    messages.append(orm("SEQ-CA", "PL-S3", order_control="CA"))
    with MLLPClient("127.0.0.1", hl7_service.mllp_port) as client:
        acks = [read_ack(unframe(receive_all(client, m))) for m in messages]

    assert [a.code for a in acks] == ["AA"] * 11
    assert [a.control_id for a in acks] == [f"SEQ-{i}" for i in range(10)] + ["SEQ-CA"]
    assert Order.objects.get(placer_order_number="PL-S3").status == "CA"
