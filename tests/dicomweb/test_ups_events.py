"""The UPS-RS event channel over a running ``ris serve`` (PS3.18 11.x, PS3.4 CC.2.4): a
subscriber's WebSocket, opened with websocket-client (not the server's library), receives the
initial State Report on subscribing, then the State Reports of a claim and a completion made by
another client over HTTP, a Cancel Requested and a Progress Report; a global subscriber gets the
reports of a workitem it never named; a wrong token is refused at the handshake."""

from __future__ import annotations

import json

import pytest
import requests
import websocket
from pydicom import Dataset
from pydicom.uid import generate_uid

from tests.dicomweb.conftest import device_account
from tests.factories import DeviceFactory, at, first_step, make_order
from worklist import services, ups

DICOM_JSON = "application/dicom+json"


def _session(token: str) -> requests.Session:
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {token}", "Content-Type": DICOM_JSON})
    return session


def _channel(url: str, token: str) -> websocket.WebSocket:
    return websocket.create_connection(url, header=[f"Authorization: Token {token}"], timeout=30)


def _next(ws: websocket.WebSocket) -> Dataset:
    return Dataset.from_json(json.loads(ws.recv()))


def _state(session, base: str, uid: str, state: str, transaction_uid: str) -> int:
    ds = Dataset()
    ds.ProcedureStepState = state
    ds.TransactionUID = transaction_uid
    return session.put(f"{base}/dicomweb/workitems/{uid}/state",
                       data=json.dumps(ds.to_json_dict()), timeout=60).status_code


@pytest.mark.django_db(transaction=True)
def test_a_subscriber_receives_the_state_reports_of_a_claim_and_a_completion(ris_service):
    watcher_device, performer_device = DeviceFactory(ae_title="AI01"), DeviceFactory(
        ae_title="CT01")
    step = first_step(make_order(station=performer_device, start=at(9)))
    uid = ups.workitem_uid(step.pk)
    watcher_token, performer_token = device_account(watcher_device)[1], device_account(
        performer_device)[1]
    watcher, performer = _session(watcher_token), _session(performer_token)
    base = ris_service.base_url

    response = watcher.post(f"{base}/dicomweb/workitems/{uid}/subscribers/AI01", timeout=60)
    assert response.status_code == 201, response.text
    channel_url = response.headers["Content-Location"]
    assert channel_url == f"ws://127.0.0.1:{ris_service.events_port}/subscribers/AI01"
    ws = _channel(channel_url, watcher_token)
    try:
        initial = _next(ws)  # sent once the channel is open and the subscription seen
        assert (initial.AffectedSOPInstanceUID, initial.EventTypeID,
                initial.ProcedureStepState) == (uid, 1, "SCHEDULED")

        transaction_uid = generate_uid()
        assert _state(performer, base, uid, "IN PROGRESS", transaction_uid) == 200
        claimed = _next(ws)
        assert (claimed.AffectedSOPClassUID, claimed.AffectedSOPInstanceUID,
                claimed.EventTypeID, claimed.ProcedureStepState) == (
            ups.UPS_PUSH_SOP_CLASS, uid, 1, "IN PROGRESS")

        cancel = Dataset()
        cancel.ReasonForCancellation = "Patient unwell"
        response = watcher.post(f"{base}/dicomweb/workitems/{uid}/cancelrequest",
                                data=json.dumps(cancel.to_json_dict()), timeout=60)
        assert response.status_code == 202, response.text
        asked = _next(ws)
        assert (asked.EventTypeID, asked.ReasonForCancellation, asked.RequestingAE) == (
            2, "Patient unwell", "AI01")

        progress = Dataset()
        item = Dataset()
        item.ProcedureStepProgress = "80"
        progress.ProcedureStepProgressInformationSequence = [item]
        response = performer.post(f"{base}/dicomweb/workitems/{uid}?transaction={transaction_uid}",
                                  data=json.dumps(progress.to_json_dict()), timeout=60)
        assert response.status_code == 200, response.text
        reported = _next(ws)
        assert reported.EventTypeID == 3
        assert float(reported.ProcedureStepProgressInformationSequence[0]
                     .ProcedureStepProgress) == 80

        assert _state(performer, base, uid, "COMPLETED", transaction_uid) == 200
        completed = _next(ws)
        assert (completed.EventTypeID, completed.ProcedureStepState) == (1, "COMPLETED")
    finally:
        ws.close()


@pytest.mark.django_db(transaction=True)
def test_a_global_subscriber_hears_of_new_and_changed_workitems(ris_service):
    watcher_device, station = DeviceFactory(ae_title="AI02"), DeviceFactory(ae_title="CT02")
    token = device_account(watcher_device)[1]
    base = ris_service.base_url
    response = _session(token).post(
        f"{base}/dicomweb/workitems/{services.UPS_GLOBAL_SUBSCRIPTION_UID}/subscribers/AI02",
        timeout=60,
    )
    assert response.status_code == 201, response.text
    ws = _channel(response.headers["Content-Location"], token)
    try:
        ws.ping()  # the channel is open before the order is made
        step = first_step(make_order(station=station, start=at(11)))
        created = _next(ws)
        assert (created.AffectedSOPInstanceUID, created.ProcedureStepState) == (
            ups.workitem_uid(step.pk), "SCHEDULED")
        services.step_transition(step=step, to="CANCELED", actor=services.Actor.system(),
                                 reason="test")
        assert _next(ws).ProcedureStepState == "CANCELED"
    finally:
        ws.close()


@pytest.mark.django_db(transaction=True)
def test_the_event_channel_refuses_a_bad_token_and_another_devices_ae(ris_service):
    device = DeviceFactory(ae_title="AI03")
    token = device_account(device)[1]
    url = f"ws://127.0.0.1:{ris_service.events_port}/subscribers"
    with pytest.raises(websocket.WebSocketBadStatusException) as bad:
        _channel(f"{url}/AI03", "not-a-token")
    assert bad.value.status_code == 401
    with pytest.raises(websocket.WebSocketBadStatusException) as other:
        _channel(f"{url}/SOMEONE", token)
    assert other.value.status_code == 403
