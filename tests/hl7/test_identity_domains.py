"""Several trusted patient identifier domains (PID-3 repetitions by assigning authority).

A ``ris serve`` of its own with ``RIS_HL7_PATIENT_ID_AUTHORITIES=HOSP,CLINIC`` (HOSP the
department's primary domain, CLINIC a trusted second one; SSA is not trusted); the hl7
package's MLLP client as the feeds, DCMTK findscu as the modality.
"""

from __future__ import annotations

import pytest
from pydicom import Dataset

from tests import service as ris_service
from tests.hl7.conftest import read_ack, send, stop_service
from tests.mwl.dcmtk import findscu
from worklist.models import AuditEvent, Order, Patient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def domains_service(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        url = ris_service.test_database_url()
    service = ris_service.RisService(
        data_dir=tmp_path_factory.mktemp("ris-domains"),
        database_url=url,
        extra_env={"RIS_HL7_PATIENT_ID_AUTHORITIES": "HOSP,CLINIC"},
    )
    service.start()
    service.wait_healthy(timeout=180)
    yield service
    stop_service(service)


def order(control_id: str, placer: str, pid3: str, *, sender: str = "HIS") -> bytes:
    segments = [
        f"MSH|^~\\&|{sender}|HOSP|RIS|RAD|20261130120000||ORM^O01|{control_id}|P|2.3.1",
        f"PID|1||{pid3}||Doe^Jane||19700101|F",
        f"ORC|NW|{placer}^{sender}|||||^^^202612011000^^R",
        f"OBR|1|{placer}^{sender}||CTHEAD^CT head^L",
    ]
    return ("\r".join(segments) + "\r").encode()


def adt(control_id: str, event: str, *segments: str) -> bytes:
    lines = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ADT^{event}|{control_id}|P|2.5.1",
        f"EVN|{event}|20261130120000",
        *segments,
    ]
    return ("\r".join(lines) + "\r").encode()


def deliver(service, raw: bytes):
    ack = read_ack(send(service.mllp_port, raw))
    assert ack.code == "AA", ack.error
    return ack


def worklist(port: int, patient_id: str) -> list[Dataset]:
    query = Dataset()
    query.PatientID = patient_id
    query.IssuerOfPatientID = ""
    other = Dataset()
    other.PatientID = ""
    other.IssuerOfPatientID = ""
    other.TypeOfPatientID = ""
    qualifier = Dataset()
    qualifier.IdentifierTypeCode = ""
    other.IssuerOfPatientIDQualifiersSequence = [qualifier]
    query.OtherPatientIDsSequence = [other]
    query.AccessionNumber = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    result = findscu(port, query=query)
    assert result.returncode == 0, result.output
    return result.responses


def other_ids(item: Dataset) -> list[tuple[str, str]]:
    return [(o.PatientID, o.IssuerOfPatientID) for o in item.get("OtherPatientIDsSequence", [])]


def test_the_primary_domain_is_the_patient_id_whatever_its_position(domains_service, catalogue):
    deliver(domains_service, order("DOM-1", "PL-DOM1", "C1^^^CLINIC^PI~H1^^^HOSP^MR"))

    [item] = worklist(domains_service.dicom_port, "H1")
    assert (item.PatientID, item.IssuerOfPatientID) == ("H1", "HOSP")
    [other] = item.OtherPatientIDsSequence
    assert (other.PatientID, other.IssuerOfPatientID) == ("C1", "CLINIC")
    # Type of Patient ID is a DICOM defined term; the HL7 identifier type travels as a code.
    assert other.TypeOfPatientID == "TEXT"
    assert other.IssuerOfPatientIDQualifiersSequence[0].IdentifierTypeCode == "PI"


def test_a_feed_knowing_only_the_other_domain_reaches_the_same_patient(
    domains_service, catalogue
):
    deliver(domains_service, order("DOM-2", "PL-DOM2", "H2^^^HOSP^MR~C2^^^CLINIC^PI"))

    deliver(domains_service, order("DOM-3", "PL-DOM3", "C2^^^CLINIC^PI", sender="CLINICSYS"))

    patient = Patient.objects.get()
    assert (patient.patient_id, patient.issuer) == ("H2", "HOSP")
    assert Order.objects.filter(patient=patient).count() == 2
    items = worklist(domains_service.dicom_port, "H2")
    assert len(items) == 2
    assert {tuple(other_ids(i)) for i in items} == {(("C2", "CLINIC"),)}


def test_the_primary_id_arriving_later_files_the_patient_under_it(domains_service, catalogue):
    deliver(domains_service, order("DOM-4", "PL-DOM4", "C4^^^CLINIC^PI", sender="CLINICSYS"))
    assert [i.PatientID for i in worklist(domains_service.dicom_port, "C4")] == ["C4"]

    deliver(domains_service, adt("DOM-5", "A08", "PID|1||H4^^^HOSP^MR~C4^^^CLINIC^PI||Doe^Jane"))

    patient = Patient.objects.get()
    assert (patient.patient_id, patient.issuer) == ("H4", "HOSP")
    [item] = worklist(domains_service.dicom_port, "H4")
    assert other_ids(item) == [("C4", "CLINIC")]
    assert worklist(domains_service.dicom_port, "C4") == []
    assert AuditEvent.objects.filter(action="patient.identifier_change").count() == 1


def test_a47_in_the_other_domain_changes_only_that_domain(domains_service, catalogue):
    deliver(domains_service, order("DOM-6", "PL-DOM6", "H6^^^HOSP^MR~C6^^^CLINIC^PI"))

    deliver(domains_service, adt("DOM-7", "A47", "PID|1||C6B^^^CLINIC^PI||Doe^Jane",
                                 "MRG|C6^^^CLINIC^PI"))

    patient = Patient.objects.get()
    assert (patient.patient_id, patient.issuer) == ("H6", "HOSP")
    [item] = worklist(domains_service.dicom_port, "H6")
    assert other_ids(item) == [("C6B", "CLINIC")]
    event = AuditEvent.objects.get(action="patient.identifier_change")
    assert "CLINIC: was C6" in event.detail


def test_a40_naming_the_other_domain_merges_that_patient(domains_service, catalogue):
    deliver(domains_service, order("DOM-8", "PL-DOM8", "H8^^^HOSP^MR~C8^^^CLINIC^PI"))
    deliver(domains_service, adt("DOM-9", "A04", "PID|1||H9^^^HOSP^MR||Doe^Jane"))

    deliver(domains_service, adt("DOM-10", "A40", "PID|1||H9^^^HOSP^MR||Doe^Jane",
                                 "MRG|C8^^^CLINIC^PI"))

    survivor = Patient.objects.get(patient_id="H9")
    assert Patient.objects.get(patient_id="H8").merged_into == survivor
    assert Order.objects.get().patient == survivor
    assert [i.PatientID for i in worklist(domains_service.dicom_port, "H9")] == ["H9"]


def test_an_untrusted_domain_never_finds_a_patient(domains_service, catalogue):
    deliver(domains_service, order("DOM-11", "PL-DOM11", "H11^^^HOSP^MR~555^^^SSA^SS"))

    deliver(domains_service, order("DOM-12", "PL-DOM12", "555^^^SSA^SS", sender="OTHER"))

    assert sorted(Patient.objects.values_list("patient_id", "issuer")) == [
        ("555", "SSA"), ("H11", "HOSP")
    ]


def test_other_domains_are_kept_when_a_message_names_only_some(domains_service, catalogue):
    deliver(domains_service, order("DOM-13", "PL-DOM13", "H13^^^HOSP^MR~C13^^^CLINIC^PI"))

    deliver(domains_service, adt("DOM-14", "A08", "PID|1||H13^^^HOSP^MR~555^^^SSA^SS||Doe^Jane"))

    patient = Patient.objects.get()
    assert sorted((i["id"], i["issuer"]) for i in patient.other_ids) == [
        ("555", "SSA"), ("C13", "CLINIC")
    ]
