"""MPPS-RS (PS3.18 chapter 15): performed procedure steps created and updated over HTTP go through
the same validation, linking and step statuses as the MPPS SCP, with the HTTP statuses of PS3.18
Tables 15.4.3-1 and 15.5.3-1; the relay to the PACS as MPPS over DIMSE is at the end."""

from __future__ import annotations

import json

import pytest
import requests
from pydicom.uid import generate_uid
from rest_framework.test import APIClient

from mpps.models import PerformedProcedureStep
from ris.models import OutboundJob
from tests.dicomweb.conftest import device_account
from tests.factories import DeviceFactory, first_step, make_order
from tests.forwarding.conftest import FAST, wait_for
from tests.forwarding.test_mpps_forward import MppsReceiver
from tests.mpps.modality import Modality
from tests.service import free_port
from worklist.models import AuditEvent, StepStatus

BASE = "/dicomweb/modality-performed-procedure-steps"
DICOM_JSON = "application/dicom+json"

#: Builds the data sets a real modality sends (tests/mpps/modality.py); no association is made.
MODALITY = Modality(port=0, ae_title="CT01")


@pytest.fixture
def ct01():
    return DeviceFactory(ae_title="CT01")


@pytest.fixture
def step(ct01):
    return first_step(make_order(station=ct01))


@pytest.fixture
def modality_client(db, ct01) -> APIClient:
    _, key = device_account(ct01)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _post(client: APIClient, uid: str, ds, *, update: bool = False):
    path = f"{BASE}/{uid}" + ("?update" if update else "")
    return client.post(path, data=json.dumps(ds.to_json_dict()), content_type=DICOM_JSON)


@pytest.mark.django_db
def test_create_is_201_and_starts_the_step_as_an_n_create_does(modality_client, step):
    uid = generate_uid()
    response = _post(modality_client, uid, MODALITY.pps_for(step))
    assert response.status_code == 201, response.content
    assert response["Location"].endswith(f"{BASE}/{uid}")
    step.refresh_from_db()
    assert step.status == StepStatus.STARTED
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert list(pps.steps.all()) == [step]
    assert pps.calling_ae_title == "CT01"
    assert AuditEvent.objects.filter(action="pps.create", actor="CT01").exists()


@pytest.mark.django_db
def test_update_to_completed_is_200_and_completes_the_step(modality_client, step):
    uid = generate_uid()
    _post(modality_client, uid, MODALITY.pps_for(step))
    response = _post(modality_client, uid, MODALITY.completed(), update=True)
    assert response.status_code == 200, response.content
    step.refresh_from_db()
    assert step.status == StepStatus.COMPLETED


@pytest.mark.django_db
def test_a_uid_in_use_is_409_conflict(modality_client, step):
    uid = generate_uid()
    assert _post(modality_client, uid, MODALITY.pps_for(step)).status_code == 201
    response = _post(modality_client, uid, MODALITY.pps_for(step))
    assert response.status_code == 409
    assert response.json()["dimse_status"] == "0111"


@pytest.mark.django_db
def test_a_create_missing_a_required_attribute_is_400_naming_it(modality_client, step):
    ds = MODALITY.pps_for(step)
    del ds.PerformedProcedureStepStartDate
    response = _post(modality_client, generate_uid(), ds)
    assert response.status_code == 400
    assert "(0040,0244)" in response.json()["detail"]
    assert response.json()["dimse_status"] == "0120"
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED  # nothing stored


@pytest.mark.django_db
def test_an_update_of_an_unknown_step_is_404(modality_client):
    response = _post(modality_client, generate_uid(), MODALITY.completed(), update=True)
    assert response.status_code == 404


@pytest.mark.django_db
def test_an_update_of_a_final_step_is_409(modality_client, step):
    uid = generate_uid()
    _post(modality_client, uid, MODALITY.pps_for(step))
    _post(modality_client, uid, MODALITY.completed(), update=True)
    response = _post(modality_client, uid, MODALITY.completed(), update=True)
    assert response.status_code == 409
    assert response.json()["code"] == "no_longer_updatable"


@pytest.mark.django_db
def test_an_update_of_a_create_only_attribute_is_200_with_a_warning(modality_client, step):
    uid = generate_uid()
    _post(modality_client, uid, MODALITY.pps_for(step))
    change = MODALITY.completed()
    change.PatientID = "SOMEONE-ELSE"
    response = _post(modality_client, uid, change, update=True)
    assert response.status_code == 200
    assert "Attributes not changed (set at create only): (0010,0020)" in response["Warning"]


@pytest.mark.django_db
def test_retrieve_returns_the_stored_step_as_dicom_json(modality_client, step):
    uid = generate_uid()
    _post(modality_client, uid, MODALITY.pps_for(step))
    response = modality_client.get(f"{BASE}/{uid}")
    assert response.status_code == 200
    assert response["Content-Type"] == DICOM_JSON
    assert response.json()["00400252"]["Value"] == ["IN PROGRESS"]
    assert modality_client.get(f"{BASE}/{generate_uid()}").status_code == 404


@pytest.mark.django_db
def test_a_payload_that_is_not_dicom_json_is_400(modality_client):
    response = modality_client.post(
        f"{BASE}/{generate_uid()}", data=b"[1, 2]", content_type=DICOM_JSON
    )
    assert response.status_code == 400


@pytest.mark.django_db
def test_an_invalid_uid_in_the_path_is_400(modality_client, step):
    response = _post(modality_client, "not-a-uid", MODALITY.pps_for(step))
    assert response.status_code == 400


@pytest.mark.django_db
def test_anonymous_create_is_401(step):
    assert _post(APIClient(), generate_uid(), MODALITY.pps_for(step)).status_code == 401


@pytest.mark.dcmtk
@pytest.mark.django_db(transaction=True)
def test_a_step_performed_over_http_is_relayed_to_the_pacs_as_mpps_over_dimse(
    new_ris_service, ct01, step
):
    """The same relay as for the MPPS SCP: an N-CREATE then an N-SET reach the PACS's MPPS SCP
    (a pynetdicom stand-in: no real MPPS SCP exists on this machine, see test_mpps_forward)."""
    from mpps.forwarding.models import PacsDestination

    receiver = MppsReceiver(free_port())
    receiver.start()
    try:
        PacsDestination.objects.create(
            name="pacs-mpps", ae_title="PACSMPPS", host="127.0.0.1", port=receiver.port,
            send_mpps=True, send_images=False, query_availability=False,
        )
        _, key = device_account(ct01)
        service = new_ris_service(**FAST)
        service.wait_healthy(timeout=180)
        session = requests.Session()
        session.headers.update({"Authorization": f"Token {key}", "Content-Type": DICOM_JSON})
        uid = generate_uid()
        url = f"{service.base_url}{BASE}/{uid}"
        created = session.post(url, data=json.dumps(MODALITY.pps_for(step).to_json_dict()))
        updated = session.post(
            f"{url}?update", data=json.dumps(MODALITY.completed().to_json_dict())
        )
        assert (created.status_code, updated.status_code) == (201, 200), created.text
        wait_for(lambda: len(receiver.received) == 2, what="two relayed messages",
                 service=service)
        (op1, uid1, create), (op2, uid2, final) = receiver.received
        assert (op1, uid1, op2, uid2) == ("N-CREATE", uid, "N-SET", uid)
        assert create.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID == step.sps_id
        assert final.PerformedProcedureStepStatus == "COMPLETED"
        assert OutboundJob.objects.filter(kind="dicom.mpps").count() == 2
    finally:
        receiver.stop()
