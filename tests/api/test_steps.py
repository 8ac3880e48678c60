"""/api/v1/steps/: the schedule, its filters, and booking, check-in and cancel through services."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.serializers import StepSerializer
from tests.factories import DeviceFactory, PatientFactory, ProcedureTypeFactory, at, first_step
from tests.factories import make_order as _make_order
from worklist import services
from worklist.audit import Actor
from worklist.models import AuditEvent, Modality, StepStatus

pytestmark = pytest.mark.django_db

URL = "/api/v1/steps/"
TODAY = dt.date(2026, 12, 1)


def make_step(start=None, station=None, **kwargs):
    return first_step(_make_order(start=start, station=station, **kwargs))


@pytest.fixture
def ct():
    return DeviceFactory(ae_title="CT1", modality=Modality.CT)


@pytest.fixture
def mr():
    return DeviceFactory(ae_title="MR1", modality=Modality.MR)


def _sps_ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["sps_id"] for row in response.json()["results"]]


# --- reading and filtering ---------------------------------------------------------------------


def test_a_step_carries_its_procedure_order_and_patient(radiologist, ct):
    step = make_step(at(9, day=TODAY), ct, patient=PatientFactory(name_alphabetic="Li^Na"))
    row = radiologist.get(f"{URL}{step.pk}/").json()
    assert row["sps_id"] == step.sps_id
    assert row["station_ae_title"] == "CT1"
    assert row["patient"]["name"] == "Li^Na"
    assert row["order"]["accession_number"] == step.requested_procedure.order.accession_number
    assert row["requested_procedure"]["study_instance_uid"]
    assert row["allowed_transitions"] == ["ARRIVED", "CANCELED", "READY", "SCHEDULED", "STARTED"]


def test_date_filter_takes_the_day_in_the_departments_time_zone(radiologist, ct, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    late = make_step(at(23, 30, day=TODAY), ct)  # 15:30 UTC, still the 1st in Shanghai
    early = make_step(at(0, 10, day=TODAY + dt.timedelta(days=1)), ct)  # 16:10 UTC on the 1st
    assert _sps_ids(radiologist.get(URL, {"date": TODAY.isoformat()})) == [late.sps_id]
    assert _sps_ids(radiologist.get(URL, {"date": "2026-12-02"})) == [early.sps_id]


def test_a_date_range_includes_both_ends(radiologist, ct):
    steps = [make_step(at(9, day=TODAY + dt.timedelta(days=n)), ct) for n in range(4)]
    response = radiologist.get(URL, {"date_from": "2026-12-02", "date_to": "2026-12-03"})
    assert _sps_ids(response) == [steps[1].sps_id, steps[2].sps_id]


def test_steps_are_filtered_by_station_modality_and_status(radiologist, ct, mr):
    on_ct = make_step(at(9, day=TODAY), ct)
    on_mr = make_step(at(9, day=TODAY), mr, procedure_type=ProcedureTypeFactory(modality="MR"))
    arrived = make_step(at(10, day=TODAY), ct)
    services.step_transition(step=arrived, to="ARRIVED", actor=Actor.system("test"))
    assert _sps_ids(radiologist.get(URL, {"station": "MR1"})) == [on_mr.sps_id]
    assert _sps_ids(radiologist.get(URL, {"modality": "CT", "status": "SCHEDULED"})) == [
        on_ct.sps_id
    ]
    assert _sps_ids(radiologist.get(f"{URL}?status=SCHEDULED&status=ARRIVED&station=CT1")) == [
        on_ct.sps_id,
        arrived.sps_id,
    ]


def test_steps_are_filtered_by_patient_and_accession(radiologist, ct):
    patient = PatientFactory(patient_id="PX")
    mine = make_step(at(9, day=TODAY), ct, patient=patient)
    other = make_step(at(10, day=TODAY), ct)
    assert _sps_ids(radiologist.get(URL, {"patient": patient.pk})) == [mine.sps_id]
    assert _sps_ids(radiologist.get(URL, {"patient_id": "PX"})) == [mine.sps_id]
    accession = other.requested_procedure.order.accession_number
    assert _sps_ids(radiologist.get(URL, {"accession": accession})) == [other.sps_id]


def test_an_invalid_filter_value_is_a_400_naming_the_filter(radiologist):
    response = radiologist.get(URL, {"date": "yesterday", "status": "LOST"})
    assert response.status_code == 400
    assert set(response.json()) == {"date", "status"}


def test_an_instant_beyond_the_calendar_is_a_400(radiologist):
    response = radiologist.get(URL, {"start_after": "0001-01-01T00:00:00+05:00"})
    assert response.status_code == 400
    assert "start_after" in response.json()


def test_ordering_is_chosen_by_the_client_and_unknown_fields_are_ignored(radiologist, ct):
    first, second = make_step(at(9, day=TODAY), ct), make_step(at(10, day=TODAY), ct)
    assert _sps_ids(radiologist.get(URL, {"ordering": "-scheduled_start"})) == [
        second.sps_id,
        first.sps_id,
    ]
    assert _sps_ids(radiologist.get(URL, {"ordering": "patient__password"})) == [
        first.sps_id,
        second.sps_id,
    ]


def test_a_page_past_the_end_is_a_404(radiologist):
    response = radiologist.get(URL, {"page": 99})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def _queries_for_page(client, size: int) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, {"date": TODAY.isoformat(), "page_size": size})
    assert len(response.json()["results"]) == size
    return len(queries)


def test_the_query_count_does_not_grow_with_the_page_size(radiologist, ct):
    for minute in range(0, 12 * 15, 15):
        make_step(at(8 + minute // 60, minute % 60, day=TODAY), ct)
    assert _queries_for_page(radiologist, 2) == _queries_for_page(radiologist, 12)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_the_direct_step_representation_equals_drf_field_by_field(ct, settings, zone):
    settings.TIME_ZONE = zone
    ptype = ProcedureTypeFactory(
        protocol_codes=[{"value": "P1", "scheme": "L", "meaning": "Head routine"}]
    )
    step = make_step(
        at(9, day=TODAY), ct, procedure_type=ptype, patient=PatientFactory(birth_date=None)
    )
    unbooked = make_step()
    for instance in (step, unbooked):
        serializer = StepSerializer(instance)
        assert serializer.to_representation(instance) == serializer.to_representation_by_fields(
            instance
        )


def test_a_step_in_the_list_is_the_same_as_its_detail(radiologist, ct):
    step = make_step(at(9, day=TODAY), ct, referring_physician="Zhou^Min=周^敏")
    listed = radiologist.get(URL, {"date": TODAY.isoformat()}).json()["results"]
    assert listed == [radiologist.get(f"{URL}{step.pk}/").json()]


# --- schedule / reschedule ---------------------------------------------------------------------


def test_front_desk_books_an_unscheduled_step(desk, ct):
    step = make_step()
    response = desk.post(
        f"{URL}{step.pk}/schedule/",
        {"start": at(14, day=TODAY).isoformat(), "station": ct.pk, "duration_minutes": 30},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == StepStatus.SCHEDULED
    assert body["station_ae_title"] == "CT1"
    assert dt.datetime.fromisoformat(body["scheduled_end"]) == at(14, 30, day=TODAY)
    assert AuditEvent.objects.filter(action="step.book", object_id=str(step.pk)).exists()


def test_rescheduling_moves_a_booked_step(desk, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = desk.post(
        f"{URL}{step.pk}/schedule/", {"start": at(15, day=TODAY).isoformat()}, format="json"
    )
    assert response.status_code == 200
    step.refresh_from_db()
    assert step.scheduled_start == at(15, day=TODAY)
    assert AuditEvent.objects.filter(action="step.reschedule", object_id=str(step.pk)).exists()


def test_rescheduling_onto_an_occupied_slot_is_a_409_with_the_clash(desk, ct):
    make_step(at(9, day=TODAY), ct)
    step = make_step(at(11, day=TODAY), ct)
    response = desk.post(
        f"{URL}{step.pk}/schedule/", {"start": at(9, 5, day=TODAY).isoformat()}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "schedule_conflict"
    assert "CT1 is booked" in response.json()["detail"]
    step.refresh_from_db()
    assert step.scheduled_start == at(11, day=TODAY)


def test_booking_outside_opening_hours_is_a_409(desk):
    station = DeviceFactory(opens_at=dt.time(8), closes_at=dt.time(17))
    step = make_step()
    response = desk.post(
        f"{URL}{step.pk}/schedule/",
        {"start": at(20, day=TODAY).isoformat(), "station": station.pk},
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["code"] == "outside_opening_hours"


def test_rescheduling_a_cancelled_step_is_a_409(desk, ct):
    step = make_step(at(9, day=TODAY), ct)
    services.step_transition(step=step, to="CANCELED", actor=Actor.system("test"))
    response = desk.post(
        f"{URL}{step.pk}/schedule/", {"start": at(10, day=TODAY).isoformat()}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"


def test_schedule_input_is_validated_per_field(desk, ct):
    step = make_step()
    response = desk.post(
        f"{URL}{step.pk}/schedule/",
        {"start": "tomorrow", "station": 999999, "duration_minutes": 0},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"start", "station", "duration_minutes"}


def test_radiologist_cannot_reschedule(radiologist, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = radiologist.post(
        f"{URL}{step.pk}/schedule/", {"start": at(10, day=TODAY).isoformat()}, format="json"
    )
    assert response.status_code == 403


# --- check-in and cancel -------------------------------------------------------------------------


def test_technologist_checks_a_patient_in(technologist, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = technologist.post(f"{URL}{step.pk}/check-in/", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == StepStatus.ARRIVED


def test_check_in_can_mark_the_patient_ready(desk, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = desk.post(f"{URL}{step.pk}/check-in/", {"status": "READY"}, format="json")
    assert response.json()["status"] == StepStatus.READY


def test_check_in_to_another_status_is_a_400(desk, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = desk.post(f"{URL}{step.pk}/check-in/", {"status": "COMPLETED"}, format="json")
    assert response.status_code == 400
    assert "status" in response.json()


def test_checking_in_an_unscheduled_step_is_a_409(desk):
    step = make_step()
    response = desk.post(f"{URL}{step.pk}/check-in/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    assert "cannot become arrived" in response.json()["detail"]


def test_radiologist_cannot_check_in(radiologist, ct):
    step = make_step(at(9, day=TODAY), ct)
    assert radiologist.post(f"{URL}{step.pk}/check-in/", {}, format="json").status_code == 403


def test_front_desk_cancels_a_step_with_a_reason(desk, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = desk.post(f"{URL}{step.pk}/cancel/", {"reason": "wrong side"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == StepStatus.CANCELED
    assert response.json()["status_reason"] == "wrong side"
    event = AuditEvent.objects.get(action="step.canceled", object_id=str(step.pk))
    assert event.detail == "wrong side"


def test_cancelling_a_started_step_is_a_409(desk, ct):
    step = make_step(at(9, day=TODAY), ct)
    services.step_transition(step=step, to="STARTED", actor=Actor.system("test"))
    response = desk.post(f"{URL}{step.pk}/cancel/", {"reason": "oops"}, format="json")
    assert response.status_code == 409
    step.refresh_from_db()
    assert step.status == StepStatus.STARTED


def test_cancelling_a_step_without_a_reason_is_a_400(desk, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = desk.post(f"{URL}{step.pk}/cancel/", {"reason": ""}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()


def test_technologist_cannot_cancel(technologist, ct):
    step = make_step(at(9, day=TODAY), ct)
    response = technologist.post(f"{URL}{step.pk}/cancel/", {"reason": "x"}, format="json")
    assert response.status_code == 403


def test_acting_on_a_missing_step_is_a_404(desk):
    assert desk.post(f"{URL}999999/check-in/", {}, format="json").status_code == 404
