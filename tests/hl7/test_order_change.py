"""ORC-1 XO from the HIS: a new exam (OBR-4) or a new priority, as the worklist then shows it.

End to end: the dedicated ``ris serve``, the hl7 package's MLLP client, DCMTK ``findscu``.
"""

from __future__ import annotations

import pytest

from ris.models import InboundMessage
from tests.factories import first_step
from tests.hl7.conftest import orm, read_ack, send
from tests.hl7.test_corpus import worklist_items
from worklist import services
from worklist.audit import Actor
from worklist.models import AuditEvent, Order, Priority, ProcedureType, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


def deliver(service, message: bytes):
    return read_ack(send(service.mllp_port, message))


@pytest.fixture
def ctchest(catalogue) -> ProcedureType:
    """A longer CT exam on the same station as CTHEAD (20 min)."""
    ptype = ProcedureType.objects.create(
        code_value="CTCHEST", code_scheme="L", code_meaning="CT Chest with contrast",
        modality="CT", description="CT Chest with contrast", default_duration_minutes=35,
        protocol_codes=[{"value": "CTCH1", "scheme": "L", "meaning": "Chest arterial phase"}],
    )
    ptype.stations.add(catalogue.ct1)
    return ptype


def order_of(placer: str) -> Order:
    return Order.objects.get(placer_order_number=placer)


@pytest.mark.dcmtk
def test_new_procedure_code_changes_the_exam_and_its_worklist_item(hl7_service, ctchest):
    deliver(hl7_service, orm("NW-C1", "PL-C1", patient_id="PC1"))
    before = first_step(order_of("PL-C1"))

    ack = deliver(
        hl7_service, orm("XO-C1", "PL-C1", order_control="XO", code="CTCHEST", patient_id="PC1")
    )

    assert ack.code == "AA", ack.error
    procedure = order_of("PL-C1").procedures.get()
    step = procedure.steps.get()
    assert (procedure.procedure_type, procedure.code_value) == (ctchest, "CTCHEST")
    assert procedure.description == step.description == "CT Chest with contrast"
    assert step.protocol_codes == ctchest.protocol_codes
    assert (step.station, step.scheduled_start) == (before.station, before.scheduled_start)
    assert (step.scheduled_end - step.scheduled_start).total_seconds() == 35 * 60
    # The IDs and Study UID stay: no image of the old exam exists.
    assert (step.sps_id, procedure.study_instance_uid) == (
        before.sps_id,
        before.requested_procedure.study_instance_uid,
    )
    [item] = worklist_items(hl7_service.dicom_port, "PC1")
    assert item.RequestedProcedureDescription == "CT Chest with contrast"


def test_new_procedure_code_is_refused_once_a_step_started(hl7_service, ctchest):
    deliver(hl7_service, orm("NW-C2", "PL-C2"))
    step = first_step(order_of("PL-C2"))
    services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.ae("CT1"))

    ack = deliver(hl7_service, orm("XO-C2", "PL-C2", order_control="XO", code="CTCHEST"))

    assert ack.code == "AE"
    assert "207" in ack.error and "already started" in ack.error and step.sps_id in ack.error
    procedure = order_of("PL-C2").procedures.get()
    assert procedure.code_value == "CTHEAD"
    assert procedure.steps.get().description == "CT Head without contrast"
    assert InboundMessage.objects.get(control_id="XO-C2").status == InboundMessage.Status.ERROR


def test_unknown_procedure_code_in_a_change_gets_ae_103_and_changes_nothing(
    hl7_service, catalogue
):
    deliver(hl7_service, orm("NW-C3", "PL-C3", start="202612011000"))

    ack = deliver(
        hl7_service,
        orm("XO-C3", "PL-C3", order_control="XO", code="XRCHEST", start="202612021400"),
    )

    assert ack.code == "AE"
    assert "103" in ack.error and "XRCHEST" in ack.error
    step = first_step(order_of("PL-C3"))
    assert step.requested_procedure.code_value == "CTHEAD"
    assert step.scheduled_start.isoformat() == "2026-12-01T10:00:00+00:00"


def test_new_procedure_of_another_modality_than_the_booked_station_is_refused(
    hl7_service, catalogue
):
    deliver(hl7_service, orm("NW-C4", "PL-C4"))

    ack = deliver(hl7_service, orm("XO-C4", "PL-C4", order_control="XO", code="MRBRAIN"))

    assert ack.code == "AE"
    assert "CT1" in ack.error and "MRBRAIN" in ack.error
    step = first_step(order_of("PL-C4"))
    assert (step.modality, step.requested_procedure.code_value) == ("CT", "CTHEAD")


def test_change_with_the_same_procedure_code_leaves_the_procedure_alone(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-C5", "PL-C5"))

    ack = deliver(hl7_service, orm("XO-C5", "PL-C5", order_control="XO", code="CTHEAD"))

    assert ack.code == "AA", ack.error
    assert not AuditEvent.objects.filter(action="procedure.change").exists()


@pytest.mark.dcmtk
def test_new_priority_shows_as_requested_procedure_priority(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-C6", "PL-C6", patient_id="PC6"))

    ack = deliver(
        hl7_service,
        orm("XO-C6", "PL-C6", order_control="XO", patient_id="PC6",
            extra_orc={7: "^^^202612011000^^S"}),
    )

    assert ack.code == "AA", ack.error
    order = order_of("PL-C6")
    assert order.priority == order.procedures.get().priority == Priority.STAT
    [item] = worklist_items(hl7_service.dicom_port, "PC6")
    assert item.RequestedProcedurePriority == "STAT"


def two_procedures(control_id: str, order_control: str, codes: tuple[str, str]) -> bytes:
    """An ORM^O01 of one order with two OBRs, in two ORC groups of the same placer number."""
    segments = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ORM^O01|{control_id}|P|2.3.1",
        "PID|1||PC7^^^HOSP^MR||Doe^Jane||19700101|F",
        "PV1|1|O|RAD",
    ]
    for code in codes:
        segments += [
            f"ORC|{order_control}|PL-C7^HIS||||||^^^202612011000^^R",
            f"OBR|1|PL-C7^HIS||{code}^{code} exam^L",
        ]
    return ("\r".join(segments) + "\r").encode()


def test_the_nth_obr_of_a_change_is_the_nth_requested_procedure(hl7_service, ctchest):
    deliver(hl7_service, two_procedures("NW-C7", "NW", ("CTHEAD", "USABD")))

    ack = deliver(hl7_service, two_procedures("XO-C7", "XO", ("CTHEAD", "CTCHEST")))

    assert ack.code == "AA", ack.error
    procedures = order_of("PL-C7").procedures.order_by("pk")
    assert [p.code_value for p in procedures] == ["CTHEAD", "CTCHEST"]
    assert [p.steps.get().modality for p in procedures] == ["CT", "CT"]
