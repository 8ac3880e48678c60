"""/api/v1/patients/: register, read, search and update patients through the services."""

from __future__ import annotations

import pytest

from tests.factories import PatientFactory
from worklist.models import AuditEvent, Patient

pytestmark = pytest.mark.django_db

URL = "/api/v1/patients/"


def test_front_desk_registers_a_patient_with_a_chinese_name(desk):
    response = desk.post(
        URL,
        {
            "patient_id": "P100",
            "issuer": "HOSP",
            "name": "Wang^XiaoDong=王^小东=wang^xiao dong",
            "birth_date": "1980-03-12",
            "sex": "M",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name_ideographic"] == "王^小东"
    assert body["display_name"] == "王 小东 / Wang XiaoDong"
    patient = Patient.objects.get(patient_id="P100", issuer="HOSP")
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东=wang^xiao dong"
    assert AuditEvent.objects.filter(action="patient.create", object_id=str(patient.pk)).exists()


def test_registering_an_existing_patient_id_is_a_409(desk):
    PatientFactory(patient_id="P1", issuer="HOSP")
    response = desk.post(
        URL, {"patient_id": "P1", "issuer": "HOSP", "name": "Doe^Jane"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate"
    assert Patient.objects.filter(patient_id="P1").count() == 1


def test_invalid_patient_fields_get_a_message_each(desk):
    response = desk.post(
        URL,
        {"patient_id": "A\\B", "name": "a=b=c=d", "sex": "X", "birth_date": "2999-01-01"},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"patient_id", "name", "sex", "birth_date"}
    assert not Patient.objects.exists()


def test_a_patient_posted_without_an_id_gets_the_next_generated_one(desk, settings):
    settings.RIS_PATIENT_ID_PATTERN = "API{counter:04d}"
    response = desk.post(URL, {"name": "Doe^Jane"}, format="json")
    assert response.status_code == 201
    assert response.json()["patient_id"].startswith("API")


def test_a_name_group_longer_than_dicom_allows_is_refused(desk):
    response = desk.post(URL, {"patient_id": "P2", "name": "A" * 65}, format="json")
    assert response.status_code == 400
    assert "64" in response.json()["name"][0]


def test_radiologist_reads_but_cannot_register(radiologist):
    PatientFactory()
    assert radiologist.get(URL).json()["count"] == 1
    response = radiologist.post(URL, {"patient_id": "P3", "name": "Doe^J"}, format="json")
    assert response.status_code == 403


def test_patients_are_found_by_any_name_group(desk):
    PatientFactory(name_alphabetic="Li^Na", name_ideographic="李^娜")
    PatientFactory(name_alphabetic="Smith^John", name_ideographic="")
    assert [p["name"] for p in desk.get(URL, {"name": "李"}).json()["results"]] == ["Li^Na=李^娜"]
    assert [p["name"] for p in desk.get(URL, {"name": "smith"}).json()["results"]] == ["Smith^John"]


def test_patients_are_filtered_by_patient_id_and_issuer(desk):
    PatientFactory(patient_id="SAME", issuer="A")
    PatientFactory(patient_id="SAME", issuer="B")
    results = desk.get(URL, {"patient_id": "SAME", "issuer": "B"}).json()["results"]
    assert [(p["patient_id"], p["issuer"]) for p in results] == [("SAME", "B")]


def test_front_desk_updates_demographics_and_the_trail_says_who(desk):
    patient = PatientFactory(allergies="")
    response = desk.patch(
        f"{URL}{patient.pk}/",
        {"allergies": "Iodine contrast", "weight_kg": "72.5"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["allergies"] == "Iodine contrast"
    event = AuditEvent.objects.get(action="patient.update", object_id=str(patient.pk))
    assert event.after["allergies"] == "Iodine contrast"
    assert event.user is not None


def test_patient_id_cannot_be_changed_through_an_update(desk):
    patient = PatientFactory(patient_id="KEEP")
    desk.patch(f"{URL}{patient.pk}/", {"patient_id": "OTHER"}, format="json")
    patient.refresh_from_db()
    assert patient.patient_id == "KEEP"


def test_unknown_patient_is_a_404(desk):
    response = desk.get(f"{URL}999999/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_an_id_too_large_for_the_database_is_a_404_not_a_crash(desk):
    assert desk.get(f"{URL}{2**70}/").status_code == 404
    assert desk.patch(f"{URL}{2**70}/", {}, format="json").status_code == 404


def test_a_hanzi_only_name_is_placed_in_the_ideographic_group_with_derived_pinyin(desk, settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    response = desk.post(URL, {"patient_id": "P200", "name": "王^小东"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "Wang^XiaoDong=王^小东"
    assert body["name_alphabetic_derived"] is True


def test_a_romanisation_the_client_sends_is_kept_as_sent(desk, settings):
    response = desk.post(
        URL, {"patient_id": "P201", "name": "WONG^SIU TUNG=王^小东"}, format="json"
    )
    body = response.json()
    assert body["name_alphabetic"] == "WONG^SIU TUNG"
    assert body["name_alphabetic_derived"] is False


@pytest.mark.parametrize("typed", ["wxd", "wang xiaodong", "WANG^XIAODONG", "王小东", "小东"])
def test_the_api_finds_a_patient_by_pinyin_initials_or_hanzi(desk, typed):
    desk.post(URL, {"patient_id": "P210", "name": "=王^小东"}, format="json")
    desk.post(URL, {"patient_id": "P211", "name": "Li^Na=李^娜"}, format="json")
    response = desk.get(URL, {"name": typed})
    assert [p["patient_id"] for p in response.json()["results"]] == ["P210"]
