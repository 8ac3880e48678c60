"""/api/v1/performed-steps/: MPPS as reported, and technologists reconciling exceptions."""

from __future__ import annotations

import pytest
from pydicom.uid import generate_uid

from mpps import services as mpps_services
from mpps.models import Reconciliation
from tests.factories import DeviceFactory, first_step, make_order
from tests.mpps.modality import Modality
from worklist import services
from worklist.audit import Actor
from worklist.models import StepStatus

pytestmark = pytest.mark.django_db

URL = "/api/v1/performed-steps/"
CT01 = Actor.ae("CT01")


@pytest.fixture
def order():
    return make_order(station=DeviceFactory(ae_title="CT01"))


def _pps(step, *, sps_id: str | None = None):
    """A PPS as the modality creates it (N-CREATE IN PROGRESS) for ``step``."""
    dataset = Modality(port=0).pps_for(step)
    if sps_id is not None:
        dataset.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = sps_id
    return mpps_services.pps_create(sop_instance_uid=generate_uid(), dataset=dataset, actor=CT01)


def test_a_matched_pps_lists_the_step_it_performed(radiologist, order):
    step = first_step(order)
    pps = _pps(step)
    row = radiologist.get(URL).json()["results"][0]
    assert row["sop_instance_uid"] == pps.sop_instance_uid
    assert row["reconciliation"] == Reconciliation.MATCHED
    assert [link["sps_id"] for link in row["linked_steps"]] == [step.sps_id]


def test_the_detail_carries_the_dataset_as_the_modality_sent_it(radiologist, order):
    pps = _pps(first_step(order))
    detail = radiologist.get(f"{URL}{pps.pk}/").json()
    assert detail["dataset"]["00400252"]["Value"] == ["IN PROGRESS"]


def test_exceptions_are_listed_on_their_own(technologist, order):
    _pps(first_step(order))
    typo = _pps(first_step(make_order(station=DeviceFactory())), sps_id="SPS-TYPO")
    rows = technologist.get(URL, {"exception": "true"}).json()["results"]
    assert [row["id"] for row in rows] == [typo.pk]
    assert rows[0]["is_exception"] is True


def test_technologist_links_an_exception_to_its_order_and_the_step_starts(technologist, order):
    pps = _pps(first_step(order), sps_id="SPS-TYPO")
    response = technologist.post(
        f"{URL}{pps.pk}/link/", {"order": order.pk, "note": "typo at CT01"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["reconciliation"] == Reconciliation.LINKED
    assert first_step(order).status == StepStatus.STARTED


def test_linking_to_an_order_without_live_steps_is_refused_with_the_reason(technologist, order):
    pps = _pps(first_step(order), sps_id="SPS-TYPO")
    cancelled = make_order(station=DeviceFactory())
    services.order_cancel(order=cancelled, actor=Actor.system("test"), reason="test")
    response = technologist.post(f"{URL}{pps.pk}/link/", {"order": cancelled.pk}, format="json")
    assert response.status_code == 400
    assert "no scheduled step" in response.json()["detail"]
    pps.refresh_from_db()
    assert pps.reconciliation == Reconciliation.UNMATCHED


def test_an_exception_is_dismissed_with_a_reason(technologist, order):
    pps = _pps(first_step(order), sps_id="QA-PHANTOM")
    response = technologist.post(
        f"{URL}{pps.pk}/dismiss/", {"reason": "phantom scan"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["reconciliation"] == Reconciliation.DISMISSED


def test_front_desk_cannot_reconcile(desk, order):
    pps = _pps(first_step(order), sps_id="SPS-TYPO")
    response = desk.post(f"{URL}{pps.pk}/link/", {"order": order.pk}, format="json")
    assert response.status_code == 403
