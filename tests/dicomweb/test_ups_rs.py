"""UPS-RS (PS3.18 chapter 11, PS3.4 Annex CC): scheduled steps offered as workitems; search,
retrieve, claim with a Transaction UID, complete or cancel through the one state machine, and
request cancellation. Two concurrent claimers over a running ``ris serve``: exactly one wins."""

from __future__ import annotations

import json
import threading

import pytest
import requests
from pydicom import Dataset
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from ris.roles import Role
from tests.dicomweb.conftest import device_account
from tests.factories import DeviceFactory, at, first_step, make_order
from worklist import ups
from worklist.models import StepStatus

BASE = "/dicomweb/workitems"
DICOM_JSON = "application/dicom+json"


@pytest.fixture
def ct01():
    return DeviceFactory(ae_title="CT01", station_name="CT ROOM 1")


@pytest.fixture
def step(ct01):
    return first_step(make_order(station=ct01))


@pytest.fixture
def performer(db, ct01) -> APIClient:
    _, key = device_account(ct01)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _state(client, step, state: str, transaction_uid: str | None):
    ds = Dataset()
    ds.ProcedureStepState = state
    if transaction_uid is not None:
        ds.TransactionUID = transaction_uid
    return client.put(
        f"{BASE}/{ups.workitem_uid(step.pk)}/state",
        data=json.dumps(ds.to_json_dict()),
        content_type=DICOM_JSON,
    )


def _items(response) -> list[Dataset]:
    assert response.status_code == 200, response.content
    return [Dataset.from_json(item) for item in response.json()]


def test_a_workitem_uid_names_its_step_and_nothing_else():
    for pk in (1, 42, 2**40 - 1):
        uid = ups.workitem_uid(pk)
        assert len(uid) <= 64 and ups.step_pk(uid) == pk
    assert ups.step_pk("1.2.3.4") is None
    assert ups.step_pk("2.25.12345") is None


@pytest.mark.django_db
def test_search_offers_a_scheduled_step_as_a_scheduled_workitem(performer, step):
    items = _items(performer.get(BASE, {"ProcedureStepState": "SCHEDULED"}))
    assert len(items) == 1
    item = items[0]
    assert item.SOPInstanceUID == ups.workitem_uid(step.pk)
    assert item.SOPClassUID == ups.UPS_PUSH_SOP_CLASS
    assert item.ProcedureStepState == "SCHEDULED"
    assert item.ScheduledStationNameCodeSequence[0].CodeValue == "CT01"
    order = step.requested_procedure.order
    assert item.ReferencedRequestSequence[0].AccessionNumber == order.accession_number
    assert item.PatientID == order.patient.patient_id
    assert "TransactionUID" not in item


@pytest.mark.django_db
def test_search_matches_on_station_state_and_patient(performer, step, ct01):
    make_order(station=DeviceFactory(ae_title="MR01"))
    patient_id = step.requested_procedure.order.patient.patient_id
    assert len(_items(performer.get(BASE))) == 2
    by_station = performer.get(BASE, {"ScheduledStationNameCodeSequence.CodeValue": "CT01"})
    assert [i.SOPInstanceUID for i in _items(by_station)] == [ups.workitem_uid(step.pk)]
    assert len(_items(performer.get(BASE, {"PatientID": patient_id}))) == 1
    assert performer.get(BASE, {"ProcedureStepState": "IN PROGRESS"}).status_code == 204


@pytest.mark.django_db
def test_an_unsupported_matching_key_is_400(performer, step):
    response = performer.get(BASE, {"ScheduledHumanPerformersSequence.HumanPerformerName": "x"})
    assert response.status_code == 400


@pytest.mark.django_db
def test_retrieve_returns_the_workitem_and_404_for_an_unknown_uid(performer, step):
    items = _items(performer.get(f"{BASE}/{ups.workitem_uid(step.pk)}"))
    assert items[0].SOPInstanceUID == ups.workitem_uid(step.pk)
    assert performer.get(f"{BASE}/{ups.workitem_uid(step.pk + 999)}").status_code == 404
    assert performer.get(f"{BASE}/1.2.3").status_code == 404


@pytest.mark.django_db
def test_claiming_with_a_transaction_uid_starts_the_step(performer, step):
    response = _state(performer, step, "IN PROGRESS", generate_uid())
    assert response.status_code == 200, response.content
    step.refresh_from_db()
    assert step.status == StepStatus.STARTED
    items = _items(performer.get(f"{BASE}/{ups.workitem_uid(step.pk)}"))
    assert items[0].ProcedureStepState == "IN PROGRESS"


@pytest.mark.django_db
def test_a_second_claim_is_409_already_in_progress(performer, step):
    _state(performer, step, "IN PROGRESS", generate_uid())
    response = _state(performer, step, "IN PROGRESS", generate_uid())
    assert response.status_code == 409
    assert response.json()["dimse_status"] == "C302"
    assert "already IN PROGRESS" in response["Warning"]


@pytest.mark.django_db
def test_a_claim_without_a_transaction_uid_is_400(performer, step):
    assert _state(performer, step, "IN PROGRESS", None).status_code == 400


@pytest.mark.django_db
def test_completing_needs_the_claimers_transaction_uid(performer, step):
    transaction_uid = generate_uid()
    _state(performer, step, "IN PROGRESS", transaction_uid)
    wrong = _state(performer, step, "COMPLETED", generate_uid())
    assert wrong.status_code == 409
    assert wrong.json()["dimse_status"] == "C301"
    assert _state(performer, step, "COMPLETED", transaction_uid).status_code == 200
    step.refresh_from_db()
    assert step.status == StepStatus.COMPLETED
    again = _state(performer, step, "COMPLETED", transaction_uid)
    assert (again.status_code, again.json()["dimse_status"]) == (409, "C311")


@pytest.mark.django_db
def test_canceling_a_claimed_workitem_discontinues_the_step(performer, step):
    transaction_uid = generate_uid()
    _state(performer, step, "IN PROGRESS", transaction_uid)
    assert _state(performer, step, "CANCELED", transaction_uid).status_code == 200
    step.refresh_from_db()
    assert step.status == StepStatus.DISCONTINUED
    items = _items(performer.get(f"{BASE}/{ups.workitem_uid(step.pk)}"))
    assert items[0].ProcedureStepState == "CANCELED"


@pytest.mark.django_db
def test_completing_an_unclaimed_workitem_is_409_not_in_progress(performer, step):
    response = _state(performer, step, "COMPLETED", generate_uid())
    assert (response.status_code, response.json()["dimse_status"]) == (409, "C310")


@pytest.mark.django_db
def test_a_cancellation_request_cancels_a_scheduled_step(performer, step):
    ds = Dataset()
    ds.ReasonForCancellation = "Patient did not come"
    response = performer.post(
        f"{BASE}/{ups.workitem_uid(step.pk)}/cancelrequest",
        data=json.dumps(ds.to_json_dict()), content_type=DICOM_JSON,
    )
    assert response.status_code == 202, response.content
    step.refresh_from_db()
    assert (step.status, step.status_reason) == (StepStatus.CANCELED, "Patient did not come")


@pytest.mark.django_db
def test_a_cancellation_request_for_a_claimed_workitem_is_passed_to_its_performer(
    performer, step
):
    """PS3.4 CC.2.2: the performer decides; the request is recorded (it is what the event
    channel reports as UPS Cancel Requested) and the step stays STARTED."""
    from worklist.models import AuditEvent

    _state(performer, step, "IN PROGRESS", generate_uid())
    response = performer.post(f"{BASE}/{ups.workitem_uid(step.pk)}/cancelrequest")
    assert response.status_code == 202
    step.refresh_from_db()
    assert step.status == StepStatus.STARTED
    assert AuditEvent.objects.filter(action="step.ups_cancel_requested",
                                     object_id=str(step.pk)).exists()


@pytest.mark.django_db
def test_a_cancellation_request_for_a_completed_workitem_is_409(performer, step):
    transaction_uid = generate_uid()
    _state(performer, step, "IN PROGRESS", transaction_uid)
    _state(performer, step, "COMPLETED", transaction_uid)
    response = performer.post(f"{BASE}/{ups.workitem_uid(step.pk)}/cancelrequest")
    assert (response.status_code, response.json()["dimse_status"]) == (409, "C300")


@pytest.mark.django_db
def test_a_reader_without_the_technologist_role_may_not_claim(make_reader, step):
    assert _state(make_reader, step, "IN PROGRESS", generate_uid()).status_code == 403


@pytest.fixture
def make_reader(db):
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    user = User.objects.create_user("reader", password="x" * 12)
    user.groups.add(Group.objects.get(name=Role.RADIOLOGIST.value))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.django_db(transaction=True)
def test_of_two_concurrent_claimers_exactly_one_wins(ris_service):
    """Two performers (each a device's account) claim the same workitems at the same instant,
    over a running ris serve (gunicorn threads, one transaction each): per workitem one 200,
    one 409 C302H, and the step STARTED once with the winner's Transaction UID."""
    ct01, ct02 = DeviceFactory(ae_title="CT01"), DeviceFactory(ae_title="CT02")
    steps = [first_step(make_order(station=ct01, start=at(8 + hour))) for hour in range(5)]
    tokens = [device_account(ct01)[1], device_account(ct02)[1]]
    sessions = []
    for token in tokens:
        session = requests.Session()
        session.headers.update({"Authorization": f"Token {token}", "Content-Type": DICOM_JSON})
        sessions.append(session)
    for step in steps:
        url = f"{ris_service.base_url}{BASE}/{ups.workitem_uid(step.pk)}/state"
        barrier = threading.Barrier(2)
        results: dict[int, tuple[int, str]] = {}

        def claim(index: int, url=url, barrier=barrier, results=results) -> None:
            ds = Dataset()
            ds.ProcedureStepState = "IN PROGRESS"
            ds.TransactionUID = generate_uid()
            body = json.dumps(ds.to_json_dict())
            barrier.wait()
            response = sessions[index].put(url, data=body, timeout=60)
            results[index] = (response.status_code, ds.TransactionUID)

        threads = [threading.Thread(target=claim, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        codes = sorted(code for code, _ in results.values())
        assert codes == [200, 409], results
        winner = next(uid for code, uid in results.values() if code == 200)
        step.refresh_from_db()
        assert step.status == StepStatus.STARTED
        assert step.ups_transaction_uid == winner
