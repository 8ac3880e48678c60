"""MWL-RS (PS3.18 chapter 14): the Modality Scheduled Procedure Steps search resource, in process.

What a search answers for a device's account, and the statuses and Warning headers of PS3.18
Table 14.4.3-1 and 8.3.4. The comparison with the C-FIND SCP over a socket is in
tests/dicomweb/test_mwl_rs_differential.py.
"""

from __future__ import annotations

import datetime as dt
import json
from email import message_from_bytes
from xml.etree import ElementTree as ET

import pytest
from pydicom import Dataset

from ris.roles import Role
from tests.factories import DeviceFactory, PatientFactory, make_order
from worklist.models import CharacterSet

URL = "/dicomweb/modality-scheduled-procedure-steps"
DAY = dt.date(2030, 5, 6)
pytestmark = pytest.mark.django_db


def _at(hour: int, day: dt.date = DAY) -> dt.datetime:
    from django.utils import timezone

    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


@pytest.fixture
def stations():
    ct1 = DeviceFactory(ae_title="CT1", modality="CT")
    ct2 = DeviceFactory(ae_title="CT2", modality="CT")
    wang = PatientFactory(
        patient_id="PW-1", name_alphabetic="Wang^XiaoDong", name_ideographic="王^小东"
    )
    make_order(patient=wang, station=ct1, start=_at(8))
    make_order(patient=PatientFactory(patient_id="PS-2", name_alphabetic="Smith^John"),
               station=ct1, start=_at(9))
    make_order(patient=PatientFactory(patient_id="PS-3"), station=ct2, start=_at(10))
    return ct1, ct2


def _items(response) -> list[Dataset]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    return [Dataset.from_json(item) for item in json.loads(response.content)]


def test_search_answers_dicom_json_with_the_matching_steps(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(URL, {"PatientID": "P*", "includefield": "PatientName"})
    items = _items(response)
    assert [str(ds.PatientID) for ds in items] == ["PW-1", "PS-2", "PS-3"]
    assert str(items[0].PatientName) == "Wang^XiaoDong=王^小东"
    assert set(items[0].keys()) >= {0x00100010, 0x00100020}
    assert "Warning" not in response


def test_keys_may_be_named_by_tag_and_through_sequences(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(
        URL, {"00400100.00400001": "CT2", "includefield": "00100020"}
    )
    items = _items(response)
    assert [str(ds.PatientID) for ds in items] == ["PS-3"]
    assert str(items[0].ScheduledProcedureStepSequence[0].ScheduledStationAETitle) == "CT2"


def test_without_includefield_every_supported_attribute_is_returned(client_for, stations):
    ct1, _ = stations
    items = _items(client_for(ct1).get(URL, {"PatientID": "PS-2"}))
    step = items[0].ScheduledProcedureStepSequence[0]
    assert "AccessionNumber" in items[0] and "StudyInstanceUID" in items[0]
    assert "ScheduledProcedureStepID" in step and "Modality" in step


def test_a_device_restricted_to_its_own_steps_sees_only_those(client_for, stations):
    ct1, _ = stations
    ct1.restrict_to_own_steps = True
    ct1.save()
    items = _items(client_for(ct1).get(URL, {"includefield": "PatientID"}))
    assert [str(ds.PatientID) for ds in items] == ["PW-1", "PS-2"]


def test_a_device_that_may_not_query_the_worklist_is_refused(client_for, stations):
    ct1, _ = stations
    ct1.may_query_worklist = False
    ct1.save()
    response = client_for(ct1).get(URL)
    assert response.status_code == 403
    assert "CT1" in response.json()["detail"]


def test_an_account_with_a_role_but_no_device_answers_as_an_unknown_calling_ae(
    api_user_client, stations
):
    items = _items(api_user_client.get(URL, {"includefield": "PatientID"}))
    assert len(items) == 3


def test_an_account_without_role_or_device_is_refused(client_factory, stations):
    assert client_factory().get(URL).status_code == 403


def test_anonymous_search_is_401(stations):
    from rest_framework.test import APIClient

    assert APIClient().get(URL).status_code == 401


def test_no_match_is_204_no_content(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(URL, {"PatientID": "NOBODY"})
    assert response.status_code == 204
    assert response.content == b""


def test_an_unknown_attribute_is_400(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(URL, {"NoSuchKeyword": "x"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    assert "NoSuchKeyword" in response.json()["detail"]


def test_a_value_the_matching_engine_refuses_is_400(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(
        URL, {"ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate": "2030-05-06"}
    )
    assert response.status_code == 400


def test_fuzzymatching_true_gives_literal_matching_and_the_standard_warning(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(URL, {"PatientName": "wang*", "fuzzymatching": "true"})
    assert len(_items(response)) == 1
    assert response["Warning"] == (
        "299 http://testserver/dicomweb: The fuzzymatching parameter is not supported. "
        "Only literal matching has been performed."
    )


def test_an_unsupported_return_key_is_returned_empty_with_a_warning(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(URL, {"PatientID": "PS-2", "includefield": "EthnicGroup"})
    items = _items(response)
    assert "EthnicGroup" in items[0] and items[0].EthnicGroup in (None, "")
    assert "The following attributes are not supported: 00102160" in response["Warning"]


def test_limit_and_offset_page_through_the_results_in_schedule_order(client_for, stations):
    ct1, _ = stations
    client = client_for(ct1)
    pages = [
        [str(ds.PatientID) for ds in _items(client.get(URL, {"includefield": "PatientID",
                                                              "limit": 2, "offset": offset}))]
        for offset in (0, 2)
    ]
    assert pages == [["PW-1", "PS-2"], ["PS-3"]]
    assert client.get(URL, {"offset": 3}).status_code == 204


def test_more_results_than_the_server_maximum_are_cut_with_a_warning(
    client_for, stations, settings
):
    settings.RIS_MWL_MAX_MATCHES = 2
    ct1, _ = stations
    client = client_for(ct1)
    response = client.get(URL, {"includefield": "PatientID"})
    assert len(_items(response)) == 2
    assert "The number of results exceeded the maximum supported by the server" in (
        response["Warning"]
    )
    asked_for_one = client.get(URL, {"includefield": "PatientID", "limit": 1})
    assert len(_items(asked_for_one)) == 1
    assert "Warning" not in asked_for_one  # the client's own limit cut it, not the server


def test_the_device_character_set_labels_the_answer(client_for, stations):
    ct1, _ = stations
    ct1.character_set = CharacterSet.GB18030
    ct1.save()
    items = _items(client_for(ct1).get(URL, {"PatientID": "PW-1", "includefield": "PatientName"}))
    assert items[0].SpecificCharacterSet == "GB18030"


def test_multipart_xml_answers_one_native_dicom_model_per_step(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(
        URL,
        {"PatientID": "PW-1", "includefield": "PatientName"},
        HTTP_ACCEPT='multipart/related; type="application/dicom+xml"',
    )
    assert response.status_code == 200
    content_type = response["Content-Type"]
    assert content_type.startswith('multipart/related; type="application/dicom+xml"')
    message = message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + response.content
    )
    parts = message.get_payload()
    assert len(parts) == 1
    root = ET.fromstring(parts[0].get_payload(decode=True))
    ns = {"n": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
    name = root.find("n:DicomAttribute[@keyword='PatientName']", ns)
    assert name.find("n:PersonName/n:Alphabetic/n:FamilyName", ns).text == "Wang"
    assert name.find("n:PersonName/n:Ideographic/n:GivenName", ns).text == "小东"


def test_multipart_json_answers_one_dicom_json_object_per_step(client_for, stations):
    ct1, _ = stations
    response = client_for(ct1).get(
        URL, {"includefield": "PatientID"},
        HTTP_ACCEPT='multipart/related; type="application/dicom+json"',
    )
    assert response.status_code == 200
    assert response.content.count(b"Content-Type: application/dicom+json") == 3


def test_an_accept_header_without_a_dicom_media_type_is_406(client_for, stations):
    ct1, _ = stations
    assert client_for(ct1).get(URL, HTTP_ACCEPT="image/png").status_code == 406


@pytest.fixture
def api_user_client(client_factory):
    return client_factory(Role.TECHNOLOGIST)


@pytest.fixture
def client_factory(db):
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    count = 0

    def make(*roles: Role) -> APIClient:
        nonlocal count
        count += 1
        user = User.objects.create_user(f"user-{count}", password="x" * 12)
        for role in roles:
            user.groups.add(Group.objects.get(name=role.value))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    return make


def test_the_search_resource_is_in_the_openapi_document(api_user_client):
    schema = api_user_client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/dicomweb/modality-scheduled-procedure-steps"]["get"]
    assert {"200", "204", "400", "401", "403", "406"} <= set(operation["responses"])
    assert "application/dicom+json" in operation["responses"]["200"]["content"]
    assert {p["name"] for p in operation["parameters"]} >= {"includefield", "limit", "offset"}


@pytest.mark.parametrize("charset", [c.value for c in CharacterSet])
def test_the_fast_json_writer_equals_pydicoms_json_of_the_same_item(stations, charset):
    """dicomweb.media.worklist_json skips the pydicom Dataset; it must write what pydicom's
    to_json_dict writes for the item the C-FIND builder makes, attribute for attribute."""
    from dicomweb.media import worklist_json
    from dicomweb.query import parse_search
    from worklist import selectors
    from worklist.dicom import ResponseBuilder
    from worklist.matching import worklist_query

    li = PatientFactory(patient_id="PD-1", name_alphabetic="Li^Na", name_ideographic="李^娜",
                        name_phonetic="li^na", weight_kg="70.5", size_m="1.75",
                        pregnancy_status=4)
    make_order(patient=li, station=stations[0], start=_at(11), referring_physician="Zhou^Min")
    identifier = parse_search([]).identifier
    rows = list(selectors.worklist_rows(worklist_query(identifier)))
    builder = ResponseBuilder(identifier, character_set=charset)
    assert len(rows) == 4
    for row in rows:
        assert worklist_json(builder, row) == builder.dataset(row).to_json_dict()
