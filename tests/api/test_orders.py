"""/api/v1/orders/: orders with their procedures and steps, created and cancelled by services."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import (
    DeviceFactory,
    PatientFactory,
    ProcedureTypeFactory,
    at,
    first_step,
    make_order,
)
from worklist import services
from worklist.audit import Actor
from worklist.models import AuditEvent, Order, OrderStatus, StepStatus

pytestmark = pytest.mark.django_db

URL = "/api/v1/orders/"


@pytest.fixture
def ct():
    return DeviceFactory(ae_title="CT1")


def _create(client, **fields):
    return client.post(URL, fields, format="json")


def test_front_desk_creates_an_order_with_a_booked_and_an_unbooked_procedure(desk, ct):
    patient = PatientFactory()
    head, chest = ProcedureTypeFactory(), ProcedureTypeFactory()
    response = _create(
        desk,
        patient=patient.pk,
        placer_order_number="PL-1",
        placer_issuer="HIS",
        priority="HIGH",
        referring_physician="Zhou^Min=周^敏",
        procedures=[
            {"procedure_type": head.pk, "scheduled_start": at(9).isoformat(), "station": ct.pk},
            {"procedure_type": chest.pk},
        ],
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["accession_number"]
    assert body["source"] == "API"
    assert body["patient"]["id"] == patient.pk
    steps = [proc["steps"][0] for proc in body["procedures"]]
    assert [s["status"] for s in steps] == [StepStatus.SCHEDULED, StepStatus.UNSCHEDULED]
    assert steps[0]["station_ae_title"] == "CT1"
    assert steps[1]["station"] is None
    order = Order.objects.get(pk=body["id"])
    assert order.referring_physician == "Zhou^Min=周^敏"
    assert AuditEvent.objects.filter(action="order.create", object_id=str(order.pk)).exists()


def test_an_order_without_procedures_is_a_400(desk):
    response = _create(desk, patient=PatientFactory().pk, procedures=[])
    assert response.status_code == 400
    assert "procedures" in response.json()


def test_an_unknown_procedure_type_gets_a_message_on_that_procedure(desk):
    response = _create(
        desk,
        patient=PatientFactory().pk,
        procedures=[{"procedure_type": ProcedureTypeFactory().pk}, {"procedure_type": 999999}],
    )
    assert response.status_code == 400
    assert response.json()["procedures"] == {
        "1": {"procedure_type": ['Invalid pk "999999" - object does not exist.']}
    }
    assert not Order.objects.exists()


def test_a_naive_start_time_is_read_in_the_departments_zone(desk, ct, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    response = _create(
        desk,
        patient=PatientFactory().pk,
        procedures=[
            {
                "procedure_type": ProcedureTypeFactory().pk,
                "scheduled_start": "2026-12-01T08:30:00",
                "station": ct.pk,
            }
        ],
    )
    assert response.status_code == 201, response.json()
    step = response.json()["procedures"][0]["steps"][0]
    assert step["scheduled_start"] == "2026-12-01T08:30:00+08:00"


def test_a_station_without_a_start_time_is_a_400(desk, ct):
    response = _create(
        desk,
        patient=PatientFactory().pk,
        procedures=[{"procedure_type": ProcedureTypeFactory().pk, "station": ct.pk}],
    )
    assert response.status_code == 400
    assert "scheduled_start" in response.json()["procedures"]["0"]


def test_a_duplicate_placer_order_number_is_a_409(desk):
    make_order(placer_order_number="PL-9", placer_issuer="HIS")
    response = _create(
        desk,
        patient=PatientFactory().pk,
        placer_order_number="PL-9",
        placer_issuer="HIS",
        procedures=[{"procedure_type": ProcedureTypeFactory().pk}],
    )
    assert response.status_code == 409
    assert response.json()["code"] == "duplicate"
    assert "PL-9" in response.json()["detail"]


def test_booking_into_an_occupied_slot_is_a_409_and_creates_nothing(desk, ct):
    make_order(station=ct, start=at(10))
    response = _create(
        desk,
        patient=PatientFactory().pk,
        procedures=[
            {
                "procedure_type": ProcedureTypeFactory().pk,
                "scheduled_start": at(10, 5).isoformat(),
                "station": ct.pk,
            }
        ],
    )
    assert response.status_code == 409
    assert response.json()["code"] == "schedule_conflict"
    assert Order.objects.count() == 1


def test_technologist_cannot_create_orders(technologist):
    response = _create(
        technologist,
        patient=PatientFactory().pk,
        procedures=[{"procedure_type": ProcedureTypeFactory().pk}],
    )
    assert response.status_code == 403


def test_orders_are_filtered_by_accession_status_and_patient(radiologist):
    wanted = make_order()
    other = make_order()
    services.order_cancel(order=other, actor=Actor.system("test"), reason="test")
    by_accession = radiologist.get(URL, {"accession": wanted.accession_number}).json()
    assert [o["id"] for o in by_accession["results"]] == [wanted.pk]
    by_status = radiologist.get(URL, {"status": OrderStatus.CANCELED}).json()
    assert [o["id"] for o in by_status["results"]] == [other.pk]
    by_patient = radiologist.get(URL, {"patient": wanted.patient_id}).json()
    assert [o["id"] for o in by_patient["results"]] == [wanted.pk]


def test_cancelling_an_order_cancels_its_steps_with_the_reason(desk):
    order = make_order(station=DeviceFactory(), start=at(11))
    response = desk.post(f"{URL}{order.pk}/cancel/", {"reason": "patient declined"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == OrderStatus.CANCELED
    step = first_step(order)
    assert (step.status, step.status_reason) == (StepStatus.CANCELED, "patient declined")


def test_cancelling_an_order_whose_exam_started_is_a_409(desk):
    order = make_order(station=DeviceFactory(), start=at(12))
    services.step_transition(step=first_step(order), to="STARTED", actor=Actor.system("test"))
    response = desk.post(f"{URL}{order.pk}/cancel/", {"reason": "too late"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert first_step(order).status == StepStatus.STARTED


def test_cancelling_without_a_reason_is_a_400(desk):
    order = make_order()
    response = desk.post(f"{URL}{order.pk}/cancel/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()


def _list_queries(client, count: int) -> int:
    for _ in range(count):
        make_order(procedure_type=ProcedureTypeFactory(), station=DeviceFactory(), start=None)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, {"page_size": 100}).status_code == 200
    return len(queries)


def test_listing_orders_costs_the_same_queries_for_2_or_12_orders(radiologist):
    few = _list_queries(radiologist, 2)
    many = _list_queries(radiologist, 10)
    assert few == many
