"""Patient identity over HL7: A47 change of identifier, A24 link and A37 unlink.

A real ``ris serve``, the hl7 package's MLLP client as the HIS, DCMTK findscu as the modality.
"""

from __future__ import annotations

import pytest
from pydicom import Dataset

from tests.hl7.conftest import orm, read_ack, send
from tests.mwl.dcmtk import findscu
from worklist.models import AuditEvent, Order, Patient

pytestmark = pytest.mark.django_db(transaction=True)


def adt(control_id: str, event: str, *segments: str, structure: str = "ADT_A30") -> bytes:
    lines = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ADT^{event}^{structure}|{control_id}|P|2.5.1",
        f"EVN|{event}|20261130120000",
        *segments,
    ]
    return ("\r".join(lines) + "\r").encode()


def deliver(service, raw: bytes):
    return read_ack(send(service.mllp_port, raw))


def worklist_patient_ids(port: int, patient_id: str) -> list[str]:
    query = Dataset()
    query.PatientID = patient_id
    query.PatientName = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    result = findscu(port, query=query)
    assert result.returncode == 0, result.output
    return result.patient_ids


def test_a47_moves_the_worklist_item_to_the_new_id_at_once(hl7_service, catalogue):
    assert deliver(hl7_service, orm("NW-47", "PL-47", patient_id="TMP-1")).code == "AA"
    assert worklist_patient_ids(hl7_service.dicom_port, "TMP-1") == ["TMP-1"]

    ack = deliver(
        hl7_service,
        adt("A47-1", "A47", "PID|1||MRN-1^^^HOSP^MR||Doe^Jane||19700101|F",
            "MRG|TMP-1^^^HOSP^MR"),
    )

    assert ack.code == "AA", ack.error
    assert worklist_patient_ids(hl7_service.dicom_port, "MRN-1") == ["MRN-1"]
    assert worklist_patient_ids(hl7_service.dicom_port, "TMP-1") == []
    patient = Patient.objects.get()
    assert (patient.patient_id, patient.issuer) == ("MRN-1", "HOSP")
    assert Order.objects.get().patient == patient
    assert AuditEvent.objects.filter(action="patient.identifier_change").count() == 1


def test_a47_to_an_id_of_another_patient_is_refused_as_a_merge(hl7_service, catalogue):
    deliver(hl7_service, orm("NW-47a", "PL-47a", patient_id="TMP-2"))
    deliver(hl7_service, orm("NW-47b", "PL-47b", patient_id="MRN-2"))

    ack = deliver(
        hl7_service,
        adt("A47-2", "A47", "PID|1||MRN-2^^^HOSP^MR||Doe^Jane", "MRG|TMP-2^^^HOSP^MR"),
    )

    assert ack.code == "AE"
    assert "205" in ack.error and "A40" in ack.error
    assert set(Patient.objects.values_list("patient_id", flat=True)) == {"TMP-2", "MRN-2"}


def test_a47_for_a_patient_ris_never_saw_registers_the_new_id(hl7_service, catalogue):
    ack = deliver(
        hl7_service,
        adt("A47-3", "A47", "PID|1||MRN-3^^^HOSP^MR||Doe^Jane", "MRG|TMP-3^^^HOSP^MR"),
    )

    assert ack.code == "AA"
    assert "not known" in ack.text
    assert Patient.objects.get().patient_id == "MRN-3"


def test_a47_without_mrg_is_ae_100(hl7_service, catalogue):
    ack = deliver(hl7_service, adt("A47-4", "A47", "PID|1||MRN-4^^^HOSP^MR||Doe^Jane"))

    assert ack.code == "AE"
    assert "100" in ack.error


LINKED = (
    "PID|1||MRN-5^^^HOSP^MR||Doe^Jane||19700101|F",
    "PID|2||EXT-5^^^CLINIC^PI||Doe^Jane||19700101|F",
)


def test_a24_links_and_a37_unlinks_two_patient_records(hl7_service, catalogue):
    assert deliver(hl7_service, adt("A24-1", "A24", *LINKED, structure="ADT_A24")).code == "AA"
    first = Patient.objects.get(patient_id="MRN-5")
    second = Patient.objects.get(patient_id="EXT-5")
    assert {"id": "EXT-5", "issuer": "CLINIC", "type": "linked"} in first.other_ids
    assert {"id": "MRN-5", "issuer": "HOSP", "type": "linked"} in second.other_ids

    ack = deliver(hl7_service, adt("A37-1", "A37", *LINKED, structure="ADT_A37"))

    assert ack.code == "AA", ack.error
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.other_ids == [] and second.other_ids == []


def test_a37_with_one_pid_is_ae_100(hl7_service, catalogue):
    ack = deliver(hl7_service, adt("A37-2", "A37", LINKED[0], structure="ADT_A37"))

    assert ack.code == "AE"
    assert "two PID" in ack.error
