"""UPS-RS writes and subscriptions (PS3.18 11.4, 11.6, 11.10-11.12): create a workitem (an
order booked as the REST API books one), update one (a move, a performer's progress),
subscribe per workitem and globally, unsubscribe, suspend; the UPS search refuses an account
that stands for no device when RIS_DICOM_REQUIRE_KNOWN_AE is on, as MWL-RS and C-FIND do."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from pydicom import Dataset
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ris.roles import Role
from tests.dicomweb.conftest import device_account
from tests.factories import DeviceFactory, ProcedureTypeFactory, at, first_step, make_order
from worklist import services, ups
from worklist.models import AuditEvent, Order, StepStatus, UpsSubscription

BASE = "/dicomweb/workitems"
DICOM_JSON = "application/dicom+json"
GLOBAL = services.UPS_GLOBAL_SUBSCRIPTION_UID


@pytest.fixture
def ct01(db):
    return DeviceFactory(ae_title="CT01", station_name="CT ROOM 1", modality="CT")


@pytest.fixture
def step(ct01):
    return first_step(make_order(station=ct01))


def _client(*roles: Role, name: str) -> APIClient:
    user = User.objects.create_user(name, password="x" * 12)
    for role in roles:
        user.groups.add(Group.objects.get(name=role.value))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def desk(db) -> APIClient:
    return _client(Role.FRONT_DESK, name="desk")


@pytest.fixture
def performer(ct01) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {device_account(ct01)[1]}")
    return client


def _code(value: str, meaning: str = "") -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "L"
    item.CodeMeaning = meaning or value
    return item


def _new_workitem(code: str, station: str, start: str, **patient) -> Dataset:
    ds = Dataset()
    ds.ProcedureStepState = "SCHEDULED"
    ds.PatientID = patient.get("patient_id", "UPS0001")
    ds.PatientName = patient.get("name", "Wang^Fang")
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "F"
    ds.ScheduledWorkitemCodeSequence = [_code(code)]
    ds.ScheduledStationNameCodeSequence = [_code(station)]
    ds.ScheduledProcedureStepStartDateTime = start
    ds.ScheduledProcedureStepPriority = "HIGH"
    return ds


def _post(client, url: str, ds: Dataset | None = None):
    body = json.dumps(ds.to_json_dict()) if ds is not None else ""
    return client.post(url, data=body, content_type=DICOM_JSON)


def _tomorrow(hour: int) -> str:
    day = timezone.localdate() + dt.timedelta(days=1)
    return f"{day:%Y%m%d}{hour:02d}0000"


@pytest.mark.django_db
def test_creating_a_workitem_books_an_order_and_answers_its_location(desk, ct01):
    ProcedureTypeFactory(code_value="CTHEAD", code_meaning="CT head", modality="CT")
    response = _post(desk, BASE, _new_workitem("CTHEAD", "CT01", _tomorrow(9)))
    assert response.status_code == 201, response.content
    order = Order.objects.get(patient__patient_id="UPS0001")
    step = first_step(order)
    assert response["Location"].endswith(f"{BASE}/{ups.workitem_uid(step.pk)}")
    assert (step.status, step.station, order.source, order.priority) == (
        StepStatus.SCHEDULED, ct01, Order.Source.API, "STAT"
    )
    retrieved = desk.get(f"{BASE}/{ups.workitem_uid(step.pk)}", HTTP_ACCEPT=DICOM_JSON)
    ds = Dataset.from_json(retrieved.json()[0])
    assert (ds.ProcedureStepState, ds.PatientID) == ("SCHEDULED", "UPS0001")


@pytest.mark.django_db
def test_creating_a_workitem_for_an_unknown_procedure_is_400(desk, ct01):
    response = _post(desk, BASE, _new_workitem("NOPE", "CT01", _tomorrow(9)))
    assert (response.status_code, response.json()["code"]) == (400, "unknown_procedure")
    assert "Warning" in response


@pytest.mark.django_db
def test_a_workitem_uid_chosen_by_the_client_is_refused(desk, ct01):
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT")
    response = _post(desk, f"{BASE}?workitem={generate_uid()}",
                     _new_workitem("CTHEAD", "CT01", _tomorrow(9)))
    assert response.status_code == 400


@pytest.mark.django_db
def test_a_device_account_may_not_create_workitems(performer, ct01):
    ProcedureTypeFactory(code_value="CTHEAD", modality="CT")
    response = _post(performer, BASE, _new_workitem("CTHEAD", "CT01", _tomorrow(9)))
    assert response.status_code == 403


@pytest.mark.django_db
def test_updating_a_scheduled_workitems_start_moves_the_step(desk, ct01):
    step = first_step(make_order(station=ct01, start=at(9)))
    ds = Dataset()
    ds.ScheduledProcedureStepStartDateTime = _tomorrow(14)
    response = _post(desk, f"{BASE}/{ups.workitem_uid(step.pk)}", ds)
    assert response.status_code == 200, response.content
    step.refresh_from_db()
    assert step.scheduled_start.strftime("%H") in ("14", "06")  # local or UTC rendering
    assert AuditEvent.objects.filter(action="step.reschedule", object_id=str(step.pk)).exists()


@pytest.mark.django_db
def test_an_attribute_ris_does_not_update_is_refused_by_name(desk, step):
    ds = Dataset()
    ds.PatientName = "Other^Name"
    response = _post(desk, f"{BASE}/{ups.workitem_uid(step.pk)}", ds)
    assert response.status_code == 400
    assert "PatientName" in response.json()["detail"]


@pytest.mark.django_db
def test_progress_of_a_claimed_workitem_needs_its_transaction_uid(performer, step):
    transaction_uid = generate_uid()
    services.step_claim(step=step, transaction_uid=transaction_uid,
                        actor=services.Actor.ae("CT01"))
    ds = Dataset()
    item = Dataset()
    item.ProcedureStepProgress = "50"
    item.ProcedureStepProgressDescription = "half way"
    ds.ProcedureStepProgressInformationSequence = [item]
    url = f"{BASE}/{ups.workitem_uid(step.pk)}"
    wrong = _post(performer, f"{url}?transaction={generate_uid()}", ds)
    assert (wrong.status_code, wrong.json()["dimse_status"]) == (409, "C301")
    right = _post(performer, f"{url}?transaction={transaction_uid}", ds)
    assert right.status_code == 200, right.content
    row = AuditEvent.objects.get(action="step.ups_progress", object_id=str(step.pk))
    assert row.after == {"progress": "50", "description": "half way"}


@pytest.mark.django_db
def test_subscribing_to_a_workitem_answers_the_event_channel(performer, step):
    response = _post(performer, f"{BASE}/{ups.workitem_uid(step.pk)}/subscribers/CT01")
    assert response.status_code == 201, response.content
    assert response["Content-Location"].startswith("ws://")
    assert response["Content-Location"].endswith("/subscribers/CT01")
    assert UpsSubscription.objects.filter(ae_title="CT01", step=step, subscribed=True).exists()


@pytest.mark.django_db
def test_a_device_account_subscribes_only_its_own_ae(performer, step):
    response = _post(performer, f"{BASE}/{ups.workitem_uid(step.pk)}/subscribers/OTHER")
    assert response.status_code == 403


@pytest.mark.django_db
def test_a_global_subscription_includes_every_workitem_until_unsubscribed(performer, ct01):
    from worklist import selectors

    first = first_step(make_order(station=ct01, start=at(9)))
    assert _post(performer, f"{BASE}/{GLOBAL}/subscribers/CT01").status_code == 201
    assert [s.ae_title for s in selectors.ups_subscriptions_of(first)] == ["CT01"]
    response = performer.delete(f"{BASE}/{ups.workitem_uid(first.pk)}/subscribers/CT01")
    assert response.status_code == 200
    assert selectors.ups_subscriptions_of(first) == []
    later = first_step(make_order(station=ct01, start=at(10)))
    assert [s.ae_title for s in selectors.ups_subscriptions_of(later)] == ["CT01"]
    assert performer.delete(f"{BASE}/{GLOBAL}/subscribers/CT01").status_code == 200
    assert not UpsSubscription.objects.filter(ae_title="CT01").exists()


@pytest.mark.django_db
def test_a_suspended_global_subscription_keeps_old_workitems_and_not_new_ones(performer, ct01):
    from worklist import selectors

    old = first_step(make_order(station=ct01, start=at(9)))
    _post(performer, f"{BASE}/{GLOBAL}/subscribers/CT01")
    response = _post(performer, f"{BASE}/{GLOBAL}/subscribers/CT01/suspend")
    assert response.status_code == 200, response.content
    new = first_step(make_order(station=ct01, start=at(10)))
    assert [s.ae_title for s in selectors.ups_subscriptions_of(old)] == ["CT01"]
    assert selectors.ups_subscriptions_of(new) == []


@pytest.mark.django_db
def test_suspending_without_a_global_subscription_is_404(performer):
    assert _post(performer, f"{BASE}/{GLOBAL}/subscribers/CT01/suspend").status_code == 404


@pytest.mark.django_db
def test_a_filtered_global_subscription_with_an_unknown_key_is_400(performer):
    url = f"{BASE}/{services.UPS_FILTERED_GLOBAL_SUBSCRIPTION_UID}/subscribers/CT01"
    assert _post(performer, f"{url}?Manufacturer=X").status_code == 400


@pytest.mark.django_db
def test_ups_search_refuses_an_account_without_a_device_when_known_aes_are_required(
    settings, step
):
    settings.RIS_DICOM_REQUIRE_KNOWN_AE = True
    person = _client(Role.TECHNOLOGIST, name="tech")
    assert person.get(BASE, HTTP_ACCEPT=DICOM_JSON).status_code == 403
    settings.RIS_DICOM_REQUIRE_KNOWN_AE = False
    assert person.get(BASE, HTTP_ACCEPT=DICOM_JSON).status_code == 200


def test_every_domain_error_code_has_a_ups_rs_status():
    from dicomweb.ups import HTTP_STATUS_OF_CODE
    from worklist.errors import ErrorCode

    assert set(HTTP_STATUS_OF_CODE) == set(ErrorCode)

