"""The message corpus: realistic messages of several HIS dialects, each with its expected state.

Each ``messages/<case>.hl7`` is sent as-is (bytes in its own character set) to a real
``ris serve`` with the hl7 package's MLLP client; ``messages/<case>.json`` says what the ACK,
the patient, the visit, the orders, their procedures and steps must then be, and what DCMTK
``findscu`` must get from the worklist (``"worklist": null``: the step is not on it).
"""

from __future__ import annotations

import json

import pytest
from pydicom import Dataset

from ris.models import InboundMessage
from tests.hl7.conftest import MESSAGES, corpus_message, read_ack, send
from tests.mwl.dcmtk import findscu
from worklist.models import Order, Patient, Visit

CASES = sorted(p.stem for p in MESSAGES.glob("*.hl7"))


def expected_of(case: str) -> dict:
    return json.loads((MESSAGES / f"{case}.json").read_text(encoding="utf-8"))


def _subset(actual: dict, expected: dict) -> dict:
    return {key: actual.get(key) for key in expected}


def order_state(order: Order) -> dict:
    state = {
        "placer_order_number": order.placer_order_number,
        "placer_issuer": order.placer_issuer,
        "status": order.status,
        "source": order.source,
        "priority": order.priority,
        "requesting_physician": order.requesting_physician,
        "referring_physician": order.referring_physician,
        "requesting_service": order.requesting_service,
        "reason": order.reason,
        "comments": order.comments,
        "procedures": [],
    }
    for procedure in order.procedures.order_by("pk"):
        steps = []
        for step in procedure.steps.order_by("pk"):
            steps.append(
                {
                    "status": step.status,
                    "station": step.station.ae_title if step.station else None,
                    "modality": step.modality,
                    "scheduled_start": step.scheduled_start.isoformat()
                    if step.scheduled_start
                    else None,
                }
            )
        state["procedures"].append(
            {"code_value": procedure.code_value, "priority": procedure.priority, "steps": steps}
        )
    return state


SPS_KEYS = {
    "ScheduledStationAETitle",
    "Modality",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
}
RETURN_KEYS = [
    "PatientName", "RequestedProcedureDescription", "RequestedProcedurePriority",
    "ReferringPhysicianName", "AccessionNumber",
]


def worklist_items(port: int, patient_id: str) -> list[Dataset]:
    """The worklist items of one patient, as DCMTK findscu receives them (UTF-8 requested)."""
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 192"
    query.PatientID = patient_id
    for key in RETURN_KEYS:
        setattr(query, key, "")
    item = Dataset()
    for key in SPS_KEYS:
        setattr(item, key, "")
    query.ScheduledProcedureStepSequence = [item]
    result = findscu(port, query=query)
    assert result.returncode == 0, result.output
    return result.responses


@pytest.mark.dcmtk
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", CASES)
def test_corpus_message_gives_the_expected_ack_and_database_state(case, hl7_service, catalogue):
    expected = expected_of(case)
    ack = read_ack(send(hl7_service.mllp_port, corpus_message(case)), expected["encoding"])

    assert ack.code == expected["ack"], ack.error
    stored = InboundMessage.objects.get(status=InboundMessage.Status.PROCESSED)
    assert ack.control_id == stored.control_id
    assert bytes(stored.raw) == corpus_message(case)

    patient = Patient.objects.get()
    patient_state = {
        "patient_id": patient.patient_id,
        "issuer": patient.issuer,
        "name_alphabetic": patient.name_alphabetic,
        "name_ideographic": patient.name_ideographic,
        "name_alphabetic_derived": patient.name_alphabetic_derived,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "sex": patient.sex,
        "other_ids": patient.other_ids,
        "medical_alerts": patient.medical_alerts,
    }
    assert _subset(patient_state, expected["patient"]) == expected["patient"]
    assert stored.patient == patient

    if "visit" in expected:
        visit = Visit.objects.get(patient=patient)
        visit_state = {
            "admission_id": visit.admission_id,
            "patient_class": visit.patient_class,
            "assigned_location": visit.assigned_location,
            "referring_physician": visit.referring_physician,
        }
        assert _subset(visit_state, expected["visit"]) == expected["visit"]

    orders = list(Order.objects.filter(patient=patient).order_by("pk"))
    assert len(orders) == len(expected["orders"])
    for order, expected_order in zip(orders, expected["orders"], strict=True):
        state = order_state(order)
        for procedure, expected_procedure in zip(
            state["procedures"], expected_order["procedures"], strict=True
        ):
            assert _subset(procedure, expected_procedure) == expected_procedure
        assert len(state["procedures"]) == len(expected_order["procedures"])
        flat = {k: v for k, v in expected_order.items() if k != "procedures"}
        assert _subset(state, flat) == flat
    assert {"type": "order", "id": orders[0].pk, "key": orders[0].accession_number} in stored.links

    items = worklist_items(hl7_service.dicom_port, expected["patient"]["patient_id"])
    if expected["worklist"] is None:
        assert items == []
        return
    assert items, "the new order's step is not on the worklist"
    first = items[0]
    for key, value in expected["worklist"].items():
        holder = first.ScheduledProcedureStepSequence[0] if key in SPS_KEYS else first
        assert str(holder.get(key, "")) == value, key
    assert str(first.AccessionNumber) == orders[0].accession_number
