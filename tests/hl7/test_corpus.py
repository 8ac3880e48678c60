"""The message corpus: realistic messages of several HIS dialects, each with its expected state.

Each ``messages/<case>.hl7`` is sent as-is (bytes in its own character set) to a real
``ris serve`` with the hl7 package's MLLP client; ``messages/<case>.json`` says what the ACK,
the patient, the visit, the orders, their procedures and steps must then be, and what DCMTK
``findscu`` must get from the worklist (``"worklist": null``: the step is not on it).

Optional keys: ``ack_message_type`` (MSH-9 of the answer, e.g. ``ORI^O24^ORI_O24``),
``warnings`` (the 0357 codes of the ERR segments of severity W in an AA), ``senders`` (HL7Sender
rows to create first: ``{"application": ..., "default_charset": ...}``).
"""

from __future__ import annotations

import json

import hl7
import pytest
from pydicom import Dataset

from ris.models import HL7Sender, InboundMessage
from tests.hl7.conftest import MESSAGES, corpus_message, read_ack, send
from tests.mwl.dcmtk import findscu
from worklist.models import Order, Patient, Visit

CASES = sorted(p.stem for p in MESSAGES.glob("*.hl7"))


def expected_of(case: str) -> dict:
    return json.loads((MESSAGES / f"{case}.json").read_text(encoding="utf-8"))


def warning_codes(answer: hl7.Message, code: str) -> list[str]:
    """The 0357 codes of the ERR segments of severity W: ERR-4 from v2.5; before, ERR-1 has no
    severity and every ERR of an AA is a warning."""
    codes = []
    for segment in answer:
        if str(segment[0]) != "ERR":
            continue
        text = str(segment)
        if len(segment) > 4 and str(segment[4]):
            if str(segment[4]) == "W":
                codes.append(text.split("|")[3].split("^")[0])
        elif code == "AA":
            codes.append(text.split("|")[1].split("^")[3].split("&")[0])
    return codes


def _subset(actual: dict, expected: dict) -> dict:
    return {key: actual.get(key) for key in expected}


def order_state(order: Order) -> dict:
    state = {
        "accession_number": order.accession_number,
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
                    "sps_id": step.sps_id,
                    "status": step.status,
                    "station": step.station.ae_title if step.station else None,
                    "location": step.location,
                    "protocol_codes": [c.get("value") for c in step.protocol_codes],
                    "modality": step.modality,
                    "scheduled_start": step.scheduled_start.isoformat()
                    if step.scheduled_start
                    else None,
                }
            )
        state["procedures"].append(
            {
                "code_value": procedure.code_value,
                "priority": procedure.priority,
                "requested_procedure_id": procedure.requested_procedure_id,
                "study_instance_uid": procedure.study_instance_uid,
                "steps": steps,
            }
        )
    return state


SPS_KEYS = {
    "ScheduledProcedureStepID",  # always asked for: the items are sorted by it
    "ScheduledProcedureStepLocation",
    "ScheduledStationAETitle",
    "Modality",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
}
RETURN_KEYS = [
    "PatientName", "RequestedProcedureDescription", "RequestedProcedurePriority",
    "ReferringPhysicianName", "AccessionNumber", "RequestedProcedureID", "StudyInstanceUID",
    "PatientBirthDate", "PatientSex",
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
    for sender in expected.get("senders", []):
        HL7Sender.objects.update_or_create(application=sender["application"], defaults=sender)
    ack = read_ack(send(hl7_service.mllp_port, corpus_message(case)), expected["encoding"])

    assert ack.code == expected["ack"], ack.error
    answer = hl7.parse(ack.raw.decode(expected["encoding"]))
    if "ack_message_type" in expected:
        assert str(answer.segment("MSH")[9]) == expected["ack_message_type"]
    warnings = warning_codes(answer, ack.code)
    assert warnings == expected.get("warnings", [])
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
        "birth_date_precision": patient.birth_date_precision,
        "sex": patient.sex,
        "other_ids": patient.other_ids,
        "medical_alerts": patient.medical_alerts,
        "allergies": patient.allergies,
        "weight_kg": str(patient.weight_kg) if patient.weight_kg is not None else None,
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
            steps = expected_procedure.get("steps", [])
            assert len(procedure["steps"]) == len(steps)
            for step, expected_step in zip(procedure["steps"], steps, strict=True):
                assert _subset(step, expected_step) == expected_step
            flat_procedure = {k: v for k, v in expected_procedure.items() if k != "steps"}
            assert _subset(procedure, flat_procedure) == flat_procedure
        assert len(state["procedures"]) == len(expected_order["procedures"])
        flat = {k: v for k, v in expected_order.items() if k != "procedures"}
        assert _subset(state, flat) == flat
    if orders:
        link = {"type": "order", "id": orders[0].pk, "key": orders[0].accession_number}
        assert link in stored.links

    items = worklist_items(hl7_service.dicom_port, expected["patient"]["patient_id"])
    if expected["worklist"] is None:
        assert items == []
        return
    assert items, "the new order's step is not on the worklist"
    items.sort(key=lambda ds: str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID))
    if "worklist_items" in expected:
        assert len(items) == expected["worklist_items"]
    first = items[0]
    for key, value in expected["worklist"].items():
        holder = first.ScheduledProcedureStepSequence[0] if key in SPS_KEYS else first
        assert str(holder.get(key, "")) == value, key
    assert str(first.AccessionNumber) == orders[0].accession_number
