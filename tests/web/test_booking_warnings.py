"""A manual booking the next-free-slot search would not offer asks first: outside the opening
hours, in time reserved for other cases, or while the patient is elsewhere (scheduling.
booking_warnings); what cannot happen (a holiday, an overlap) is still refused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from tests.factories import PatientFactory, at, first_step, make_order
from worklist import services
from worklist.audit import Actor
from worklist.errors import DomainError, ErrorCode
from worklist.models import (
    OpeningPeriod,
    Priority,
    ScheduleException,
    SlotReservation,
    StepStatus,
    Visit,
)

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def _slot(station, hour, minute=0, **extra) -> dict:
    return {"station": station.pk, "date": TOMORROW.isoformat(),
            "time": f"{hour:02d}:{minute:02d}", **extra}


@pytest.fixture
def urgent_morning(ct1):
    return SlotReservation.objects.create(
        station=ct1, weekday=TOMORROW.weekday(), starts_at=dt.time(8), ends_at=dt.time(9),
        kind=SlotReservation.Kind.URGENT,
    )


def test_a_routine_exam_in_urgent_time_asks_first(desk, ct_head, ct1, urgent_morning):
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 8, 30)})
    (warning,) = response.context["warnings"]
    assert "is reserved for urgent cases" in warning
    step.refresh_from_db()
    assert step.status == StepStatus.UNSCHEDULED
    response = desk.post(reverse("web:book"),
                         {"step": step.pk, **_slot(ct1, 8, 30), "confirm_warnings": "on"})
    assert response.status_code == 302
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED


def test_the_cases_a_reservation_is_kept_for_book_without_a_question(
    desk, ct_head, ct1, urgent_morning
):
    SlotReservation.objects.create(
        station=ct1, weekday=TOMORROW.weekday(), starts_at=dt.time(10), ends_at=dt.time(11),
        kind=SlotReservation.Kind.INPATIENT,
    )
    stat = first_step(make_order(procedure_type=ct_head, priority=Priority.STAT))
    assert desk.post(reverse("web:book"), {"step": stat.pk, **_slot(ct1, 8)}).status_code == 302
    patient = PatientFactory()
    visit = Visit.objects.create(patient=patient, admission_id="V1", patient_class="I")
    inpatient = first_step(make_order(procedure_type=ct_head, patient=patient, visit=visit))
    response = desk.post(reverse("web:book"), {"step": inpatient.pk, **_slot(ct1, 10)})
    assert response.status_code == 302


def test_moving_an_exam_onto_the_patients_other_exam_asks_first(desk, ct_head, ct1, ct2):
    patient = PatientFactory()
    make_order(procedure_type=ct_head, patient=patient, station=ct1, start=at(9, day=TOMORROW))
    other = first_step(make_order(procedure_type=ct_head, patient=patient, station=ct2,
                                  start=at(11, day=TOMORROW)))
    url = reverse("web:move", kwargs={"pk": other.pk})
    response = desk.post(url, _slot(ct2, 9, 10))
    (warning,) = response.context["warnings"]
    assert "The patient already has an exam on CT1" in warning
    other.refresh_from_db()
    assert other.scheduled_start == at(11, day=TOMORROW)
    assert desk.post(url, _slot(ct2, 9, 10, confirm_warnings="on")).status_code == 302


def test_a_new_order_booked_outside_the_hours_asks_first(desk, ct_head, ct1):
    patient = PatientFactory()
    data = {"procedure_type": ct_head.pk, "priority": "ROUTINE", "station": ct1.pk,
            "date": TOMORROW.isoformat(), "time": "06:00"}
    url = f"{reverse('web:order_create')}?patient={patient.pk}"
    response = desk.post(url, data)
    assert response.status_code == 200 and len(response.context["warnings"]) == 1
    assert not patient.orders.exists()
    assert desk.post(url, {**data, "confirm_warnings": "on"}).status_code == 302
    assert first_step(patient.orders.get()).scheduled_start == at(6, day=TOMORROW)


def test_a_holiday_is_refused_even_when_confirmed(desk, ct_head, ct1):
    OpeningPeriod.objects.create(station=ct1, weekday=TOMORROW.weekday(), opens_at=dt.time(8),
                                 closes_at=dt.time(17))
    ScheduleException.objects.create(station=ct1, starts=at(0, day=TOMORROW),
                                     ends=at(23, day=TOMORROW),
                                     kind=ScheduleException.Kind.HOLIDAY)
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(reverse("web:book"),
                         {"step": step.pk, **_slot(ct1, 9), "confirm_warnings": "on"})
    assert response.status_code == 200
    assert "holiday" in " ".join(response.context["form"].non_field_errors())
    step.refresh_from_db()
    assert step.status == StepStatus.UNSCHEDULED


def test_warnings_are_in_chinese(desk, ct_head, ct1, urgent_morning):
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    step = first_step(make_order(procedure_type=ct_head))
    page = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 8, 30)})
    text = page.content.decode()
    assert "急诊病例" in text and "reserved" not in text and "Book anyway" not in text


def test_only_a_person_who_confirmed_books_outside_the_hours(ct_head, ct1):
    """HL7 and the API never pass the confirmation: the domain refuses as before."""
    step = first_step(make_order(procedure_type=ct_head))
    with pytest.raises(DomainError) as refused:
        services.step_schedule(step=step, start=at(20, day=TOMORROW), station=ct1,
                               actor=Actor.system("api"))
    assert refused.value.code == ErrorCode.OUTSIDE_OPENING_HOURS
    step = services.step_schedule(step=step, start=at(20, day=TOMORROW), station=ct1,
                                  actor=Actor.system("desk"), outside_hours_ok=True)
    assert step.status == StepStatus.SCHEDULED
