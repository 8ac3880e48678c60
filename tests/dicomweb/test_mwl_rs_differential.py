"""MWL-RS against the C-FIND SCP of the same running ``ris serve``: the same keys asked by DCMTK
findscu and by dicomweb-client (the DICOMweb client nobody here wrote) give the same items, with
the same values, in the same order, for the same calling device.

The worklist is tests/mwl/conftest.py::standard_worklist (eleven steps that exercise every
matching rule). CT1's API account stands for the CT1 device, as its calling AE title does in
DIMSE; a role holder without a device answers as an unknown calling AE title.
"""

from __future__ import annotations

import pytest
import requests
from dicomweb_client import DICOMwebClient
from django.contrib.auth.models import Group, User
from pydicom import Dataset
from rest_framework.authtoken.models import Token

from ris.roles import Role
from tests.mwl.conftest import committed, device, standard_worklist, uid
from tests.mwl.dcmtk import findscu

pytestmark = [pytest.mark.dcmtk]

SPS = "ScheduledProcedureStepSequence"
RETURN_KEYS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "ReferringPhysicianName",
    f"{SPS}.ScheduledStationAETitle",
    f"{SPS}.ScheduledProcedureStepStartDate",
    f"{SPS}.ScheduledProcedureStepStartTime",
    f"{SPS}.Modality",
    f"{SPS}.ScheduledProcedureStepID",
    f"{SPS}.ScheduledProcedureStepDescription",
    f"{SPS}.ScheduledProcedureStepStatus",
    f"{SPS}.ScheduledPerformingPhysicianName",
]

#: The held-in query set: one query per matching rule of PS3.4 C.2.2.2 that ris implements.
QUERIES: dict[str, dict[str, str]] = {
    "universal": {},
    "single_value": {"PatientID": "PID-02"},
    "wildcard_star": {"PatientID": "PID-1*"},
    "wildcard_question_mark": {"AccessionNumber": "ACC-A0?"},
    "person_name_case_insensitive": {"PatientName": "SMITH*"},
    "person_name_ideographic": {"PatientName": "王*"},
    "station": {f"{SPS}.ScheduledStationAETitle": "MR1"},
    "modality_case_sensitive": {f"{SPS}.Modality": "CT"},
    "date": {f"{SPS}.ScheduledProcedureStepStartDate": "20300310"},
    "date_range": {f"{SPS}.ScheduledProcedureStepStartDate": "20300309-20300311"},
    "date_and_time_range": {
        f"{SPS}.ScheduledProcedureStepStartDate": "20300310",
        f"{SPS}.ScheduledProcedureStepStartTime": "1000-1630",
    },
    "status_asked": {f"{SPS}.ScheduledProcedureStepStatus": "CANCELED"},
    "uid_list": {"StudyInstanceUID": f"{uid('A02')},{uid('A05')}"},
    "nothing": {"PatientID": "NOBODY"},
}


def _findscu_keys(match: dict[str, str]) -> list[str]:
    keys = ["SpecificCharacterSet=ISO_IR 192"]
    for name in RETURN_KEYS:
        if name not in match:
            keys.append(f"{name.replace(SPS + '.', SPS + '[0].')}=")
    for name, value in match.items():
        value = value.replace(",", "\\") if name == "StudyInstanceUID" else value
        keys.append(f"{name.replace(SPS + '.', SPS + '[0].')}={value}")
    return keys


def _account(username: str, *roles: Role) -> str:
    user = User.objects.create_user(username, password="x" * 12)
    for role in roles:
        user.groups.add(Group.objects.get(name=role.value))
    return user, Token.objects.create(user=user).key


@pytest.fixture(scope="module")
def peers(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        standard_worklist()
        ct1_user, ct1_key = _account("ct1-modality")
        ct1 = device("CT1")
        ct1.api_user = ct1_user
        ct1.character_set = "ISO_IR 192"
        ct1.save()
        _, reader_key = _account("reader", Role.TECHNOLOGIST)
        yield ris_service, {"CT1": ct1_key, "FINDSCU": reader_key}


def _dicomweb(service, token: str) -> DICOMwebClient:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return DICOMwebClient(url=f"{service.base_url}/dicomweb", session=session)


def _search(client: DICOMwebClient, match: dict[str, str], **extra) -> list[dict]:
    params = {"SpecificCharacterSet": "ISO_IR 192", **match, **extra}
    params["includefield"] = [name for name in RETURN_KEYS if name not in match]
    return client._http_get_application_json(
        f"{client.base_url}/modality-scheduled-procedure-steps", params=params, **(
            {"get_remaining": True} if "limit" in extra else {}
        )
    )


@pytest.mark.parametrize("calling_ae", ["CT1", "FINDSCU"])
@pytest.mark.parametrize("name", list(QUERIES))
def test_mwl_rs_returns_the_items_findscu_receives(peers, name, calling_ae):
    service, tokens = peers
    match = QUERIES[name]
    modality = findscu(service.dicom_port, _findscu_keys(match), calling_ae=calling_ae)
    assert modality.final.startswith("Success"), modality.output
    web = _search(_dicomweb(service, tokens[calling_ae]), match)
    expected = [ds.to_json_dict() for ds in modality.responses]
    assert web == expected
    assert [Dataset.from_json(item) for item in web] == modality.responses
    if name != "nothing":
        assert web, "a query of the held-in set that should match something matched nothing"


def test_paging_with_limit_and_offset_gives_the_same_items_as_one_c_find(peers):
    service, tokens = peers
    modality = findscu(service.dicom_port, _findscu_keys({}), calling_ae="CT1")
    client = _dicomweb(service, tokens["CT1"])
    paged = _search(client, {}, limit=2)  # dicomweb-client follows with offset=2, 4, ...
    assert paged == [ds.to_json_dict() for ds in modality.responses]
    assert len(paged) > 2


def test_a_device_restricted_to_its_own_steps_sees_the_same_on_both_doors(
    peers, django_db_blocker
):
    service, tokens = peers
    with django_db_blocker.unblock():
        ct1 = device("CT1")
        ct1.restrict_to_own_steps = True
        ct1.save()
    try:
        modality = findscu(service.dicom_port, _findscu_keys({}), calling_ae="CT1")
        web = _search(_dicomweb(service, tokens["CT1"]), {})
        assert web == [ds.to_json_dict() for ds in modality.responses]
        assert {ds.ScheduledProcedureStepSequence[0].ScheduledStationAETitle
                for ds in modality.responses} == {"CT1"}
    finally:
        with django_db_blocker.unblock():
            ct1.restrict_to_own_steps = False
            ct1.save()
