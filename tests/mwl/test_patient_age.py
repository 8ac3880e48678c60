"""Age as entered: a patient registered with an age and no birth date (the web form, an HL7
order whose OBX carries LOINC 30525-0 Age) gets no invented birth date, and DCMTK findscu asking
for Patient's Age (0010,1010) reads the stated age; a patient with a whole birth date is answered
with the birth date and an empty age (the modality computes it)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from pydicom import Dataset

from ris.hl7 import handler
from ris.roles import Role
from tests.factories import PatientFactory, make_order
from tests.hl7.conftest import orm, read_ack
from tests.mwl.conftest import committed, device
from tests.mwl.dcmtk import dcmdump, findscu
from tests.web.conftest import make_user
from worklist.models import CharacterSet, Patient, ProcedureType

pytestmark = [pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        ct = device("AGECT1", modality="CT", station_name="AGECT1", allow_overbooking=True)
        cthead = ProcedureType.objects.create(
            code_value="CTHEAD", code_scheme="L", code_meaning="CT head", modality="CT",
            description="CT head", default_duration_minutes=15,
        )
        cthead.stations.add(ct)
        desk = Client()
        desk.force_login(make_user("desk-age", Role.FRONT_DESK))
        response = desk.post(reverse("web:patient_create"), {
            "patient_id": "AGE-WEB-1", "ideographic_family": "王", "ideographic_given": "小东",
            "age_value": "45", "age_unit": "Y",
        })
        assert response.status_code == 302
        make_order(patient=Patient.objects.get(patient_id="AGE-WEB-1"), procedure_type=cthead,
                   station=ct)
        # an HIS that knows no birth date: PID-7 empty, the age in an OBX (UCUM months)
        message = orm("AGE-1", "PL-AGE", name="李^娜", patient_id="AGE-HL7-1")
        head, rest = message.replace(b"||19700101|F", b"|||F").split(b"\r", 1)
        obx = b"OBX|1|NM|30525-0^Age^LN||8|mo^month^UCUM|||||F\r"
        message = head + b"||||||UNICODE UTF-8\r" + rest + obx
        ack = read_ack(handler.handle(message, "test"))
        assert ack.code == "AA", ack
        make_order(patient=PatientFactory(patient_id="AGE-DOB-1", age="045Y"),
                   procedure_type=cthead, station=ct)
        device("AGESCU", character_set=CharacterSet.GB2312)
        yield ris_service.dicom_port


def answer(port: int, patient_id: str) -> tuple[Dataset, str]:
    result = findscu(port, ["PatientID=" + patient_id, "PatientAge", "PatientBirthDate",
                            "PatientName"], calling_ae="AGESCU")
    assert result.final == "Success", result.output
    (raw,) = result.raw
    dump = dcmdump(raw)
    assert "W:" not in dump and "E:" not in dump, dump
    return result.responses[0], dump


def test_an_age_typed_at_the_front_desk_is_served_instead_of_a_birth_date(port):
    response, dump = answer(port, "AGE-WEB-1")
    assert response.PatientAge == "045Y"
    assert response.PatientBirthDate == ""
    assert "(0010,1010) AS [045Y]" in dump


def test_an_age_from_an_hl7_obx_is_served_in_its_unit(port):
    response, dump = answer(port, "AGE-HL7-1")
    assert response.PatientAge == "008M"
    assert response.PatientBirthDate == ""
    assert str(response.PatientName).endswith("李^娜")


def test_a_whole_birth_date_is_served_and_the_age_left_to_the_modality(port):
    response, _ = answer(port, "AGE-DOB-1")
    assert response.PatientBirthDate == "19700101"
    assert response.PatientAge == ""


def test_nothing_invents_a_birth_date(port, django_db_blocker):
    with django_db_blocker.unblock():
        stored = dict(Patient.objects.filter(patient_id__startswith="AGE-").values_list(
            "patient_id", "birth_date"))
    assert stored["AGE-WEB-1"] is None and stored["AGE-HL7-1"] is None
