"""/api/v1/worklist/: the Modality Worklist as DICOM JSON, identical to what findscu receives.

The reference is the real MWL SCP of a running ``ris serve``, queried by DCMTK ``findscu -W``
with the same identifier and calling AE title; the API of the same server must return the same
items (as DICOM JSON, PS3.18 F.2), in the same order.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import pytest
from pydicom import Dataset
from rest_framework.authtoken.models import Token

from ris.roles import Role
from tests.factories import DeviceFactory, PatientFactory, ProcedureTypeFactory, at, make_order
from tests.mwl.dcmtk import findscu
from worklist.models import CharacterSet

URL = "/api/v1/worklist/"
DAY = dt.date(2026, 12, 1)


def _identifier(station: str, day: dt.date) -> Dataset:
    """A typical modality query: its own steps of one day, the usual return keys."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "StudyInstanceUID",
        "ReferringPhysicianName",
    ):
        setattr(ds, keyword, "")
    item = Dataset()
    item.ScheduledStationAETitle = station
    item.ScheduledProcedureStepStartDate = day.strftime("%Y%m%d")
    for keyword in (
        "ScheduledProcedureStepStartTime",
        "Modality",
        "ScheduledProcedureStepID",
        "ScheduledProcedureStepDescription",
        "ScheduledPerformingPhysicianName",
        "ScheduledStationName",
    ):
        setattr(item, keyword, "")
    item.ScheduledProtocolCodeSequence = []
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def _api_post(service, token: str, body: dict) -> tuple[int, object]:
    request = urllib.request.Request(
        f"{service.base_url}{URL}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def token(make_user) -> str:
    return Token.objects.create(user=make_user("worklist-reader", Role.TECHNOLOGIST)).key


@pytest.fixture
def day_on_two_stations():
    """Three steps on CT1 (one patient with a Chinese name), one on CT2, one on CT1 next day."""
    ct1 = DeviceFactory(ae_title="CT1", station_name="CT ROOM 1")
    ct2 = DeviceFactory(ae_title="CT2")
    head = ProcedureTypeFactory(
        code_value="CTHEAD",
        code_meaning="CT head",
        protocol_codes=[{"value": "P-HEAD", "scheme": "L", "meaning": "Head routine"}],
    )
    wang = PatientFactory(
        patient_id="PW-1", name_alphabetic="Wang^XiaoDong", name_ideographic="王^小东"
    )
    make_order(patient=wang, procedure_type=head, station=ct1, start=at(8, day=DAY))
    make_order(station=ct1, start=at(9, day=DAY), referring_physician="Zhou^Min=周^敏")
    make_order(station=ct1, start=at(10, day=DAY))
    make_order(station=ct2, start=at(9, day=DAY))
    make_order(station=ct1, start=at(9, day=DAY + dt.timedelta(days=1)))
    return ct1


@pytest.mark.dcmtk
@pytest.mark.django_db(transaction=True)
def test_the_worklist_endpoint_returns_what_findscu_receives(
    ris_service, token, day_on_two_stations
):
    identifier = _identifier("CT1", DAY)
    modality = findscu(ris_service.dicom_port, query=identifier, calling_ae="CT1")
    assert modality.final.startswith("Success"), modality.output
    status, items = _api_post(
        ris_service, token, {"identifier": identifier.to_json_dict(), "calling_ae_title": "CT1"}
    )
    assert status == 200, items
    assert len(items) == 3
    assert items == [ds.to_json_dict() for ds in modality.responses]
    assert items[0]["00100010"]["Value"] == [
        {"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小东"}
    ]


@pytest.mark.dcmtk
@pytest.mark.django_db(transaction=True)
def test_a_gb18030_modality_gets_the_same_items_through_the_api(
    ris_service, token, day_on_two_stations
):
    day_on_two_stations.character_set = CharacterSet.GB18030
    day_on_two_stations.save()
    identifier = _identifier("CT1", DAY)
    del identifier.SpecificCharacterSet
    modality = findscu(ris_service.dicom_port, query=identifier, calling_ae="CT1")
    status, items = _api_post(
        ris_service, token, {"identifier": identifier.to_json_dict(), "calling_ae_title": "CT1"}
    )
    assert status == 200, items
    assert items == [ds.to_json_dict() for ds in modality.responses]
    assert items[0]["00080005"]["Value"] == ["GB18030"]


@pytest.mark.django_db
def test_an_identifier_ris_cannot_match_is_a_400_with_the_scps_reason(technologist):
    identifier = _identifier("CT1", DAY)
    identifier.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate = "2026-12-01"
    response = technologist.post(URL, {"identifier": identifier.to_json_dict()}, format="json")
    assert response.status_code == 400
    assert response.json()["identifier"]


@pytest.mark.django_db
def test_malformed_dicom_json_is_a_400(technologist):
    response = technologist.post(
        URL, {"identifier": {"00100010": {"vr": "PN", "Value": 5}}}, format="json"
    )
    assert response.status_code == 400
    assert "identifier" in response.json()


@pytest.mark.django_db
def test_a_device_restricted_to_its_own_steps_sees_only_them(technologist):
    DeviceFactory(ae_title="CT1")
    DeviceFactory(ae_title="US1", restrict_to_own_steps=True)
    make_order(station=DeviceFactory(ae_title="CT1"), start=at(9, day=DAY))
    identifier = _identifier("", DAY)
    as_ct_desk = technologist.post(URL, {"identifier": identifier.to_json_dict()}, format="json")
    as_us1 = technologist.post(
        URL,
        {"identifier": identifier.to_json_dict(), "calling_ae_title": "US1"},
        format="json",
    )
    assert len(as_ct_desk.json()) == 1
    assert as_us1.json() == []


@pytest.mark.django_db
def test_a_device_that_may_not_query_is_refused(technologist):
    DeviceFactory(ae_title="NOQUERY", may_query_worklist=False)
    response = technologist.post(
        URL,
        {"identifier": _identifier("", DAY).to_json_dict(), "calling_ae_title": "NOQUERY"},
        format="json",
    )
    assert response.status_code == 403
