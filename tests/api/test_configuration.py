"""/api/v1/devices/ and /api/v1/procedure-types/: configuration, written by admins, audited."""

from __future__ import annotations

import pytest

from tests.factories import DeviceFactory, ProcedureTypeFactory, at, make_order
from worklist.models import AuditEvent, Device, ProcedureOrderCode, ProcedureType

pytestmark = pytest.mark.django_db

DEVICES = "/api/v1/devices/"
CATALOGUE = "/api/v1/procedure-types/"


def test_admin_adds_a_station_and_the_trail_records_it(admin):
    response = admin.post(
        DEVICES,
        {
            "ae_title": "CT9",
            "modality": "CT",
            "station_name": "CT9",
            "opens_at": "07:00",
            "closes_at": "19:00",
            "character_set": "GB18030",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    device = Device.objects.get(ae_title="CT9")
    assert device.character_set == "GB18030"
    assert AuditEvent.objects.filter(action="device.create", object_id=str(device.pk)).exists()


def test_front_desk_reads_devices_but_cannot_add_one(desk):
    DeviceFactory()
    assert desk.get(DEVICES).json()["count"] == 1
    assert desk.post(DEVICES, {"ae_title": "X"}, format="json").status_code == 403


@pytest.mark.parametrize(
    "ae_title", ["", "THIS_IS_SEVENTEEN", "BACK\\SLASH", "ÄÖ", "TAB\tX"], ids=repr
)
def test_an_ae_title_outside_dicom_rules_is_a_400(admin, ae_title):
    response = admin.post(DEVICES, {"ae_title": ae_title}, format="json")
    assert response.status_code == 400
    assert "ae_title" in response.json()


def test_a_second_device_with_the_same_ae_title_is_a_400(admin):
    DeviceFactory(ae_title="DUP")
    response = admin.post(DEVICES, {"ae_title": "DUP"}, format="json")
    assert response.status_code == 400
    assert "already exists" in response.json()["ae_title"][0]


def test_opening_hours_need_both_ends_in_order(admin):
    assert admin.post(DEVICES, {"ae_title": "A1", "opens_at": "08:00"}, format="json").json() == {
        "closes_at": ["Give both opening and closing times, or neither."]
    }
    assert (
        "closes_at"
        in admin.post(
            DEVICES, {"ae_title": "A1", "opens_at": "18:00", "closes_at": "08:00"}, format="json"
        ).json()
    )


def test_admin_updates_a_device(admin):
    device = DeviceFactory(ae_title="US1", active=True)
    response = admin.patch(f"{DEVICES}{device.pk}/", {"active": False}, format="json")
    assert response.status_code == 200
    device.refresh_from_db()
    assert device.active is False
    event = AuditEvent.objects.get(action="device.update", object_id=str(device.pk))
    assert (event.before["active"], event.after["active"]) == (True, False)


def test_deleting_a_device_that_has_steps_is_a_409(admin):
    station = DeviceFactory()
    make_order(station=station, start=at(9))
    response = admin.delete(f"{DEVICES}{station.pk}/")
    assert response.status_code == 409
    assert response.json()["code"] == "protected"
    assert Device.objects.filter(pk=station.pk).exists()


def test_deleting_an_unused_device(admin):
    station = DeviceFactory()
    assert admin.delete(f"{DEVICES}{station.pk}/").status_code == 204
    assert not Device.objects.filter(pk=station.pk).exists()
    assert AuditEvent.objects.filter(action="device.delete", object_id=str(station.pk)).exists()


def test_the_catalogue_lists_stations_and_hl7_order_codes(radiologist):
    station = DeviceFactory(ae_title="CT1")
    ptype = ProcedureTypeFactory(code_value="CTHEAD")
    ptype.stations.add(station)
    ProcedureOrderCode.objects.create(code="71020", coding_system="CPT", procedure_type=ptype)
    row = radiologist.get(CATALOGUE, {"station": "CT1"}).json()["results"][0]
    assert row["code_value"] == "CTHEAD"
    assert row["stations"] == [station.pk]
    assert row["order_codes"] == [{"code": "71020", "coding_system": "CPT"}]


def test_admin_adds_a_procedure_with_protocol_codes(admin):
    station = DeviceFactory()
    response = admin.post(
        CATALOGUE,
        {
            "code_value": "MRKNEE",
            "code_meaning": "MR knee",
            "modality": "MR",
            "default_duration_minutes": 30,
            "protocol_codes": [{"value": "P1", "scheme": "L", "meaning": "Knee protocol"}],
            "stations": [station.pk],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    ptype = ProcedureType.objects.get(code_value="MRKNEE")
    assert ptype.protocol_codes == [{"value": "P1", "scheme": "L", "meaning": "Knee protocol"}]
    assert list(ptype.stations.all()) == [station]


def test_a_procedure_code_already_in_the_catalogue_is_a_400(admin):
    ProcedureTypeFactory(code_value="DUP", code_scheme="L")
    response = admin.post(
        CATALOGUE,
        {
            "code_value": "DUP",
            "code_scheme": "L",
            "code_meaning": "x",
            "modality": "CT",
            "default_duration_minutes": 10,
        },
        format="json",
    )
    assert response.status_code == 400
    assert "code_value" in response.json()


def test_catalogue_fields_are_validated_per_field(admin):
    response = admin.post(
        CATALOGUE,
        {
            "code_value": "X" * 17,
            "modality": "ZZ",
            "default_duration_minutes": 0,
            "protocol_codes": [{"value": "P1"}],
        },
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) >= {
        "code_value",
        "code_meaning",
        "modality",
        "default_duration_minutes",
        "protocol_codes",
    }


def test_technologist_cannot_change_the_catalogue(technologist):
    ptype = ProcedureTypeFactory()
    response = technologist.patch(f"{CATALOGUE}{ptype.pk}/", {"active": False}, format="json")
    assert response.status_code == 403
