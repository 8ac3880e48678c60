"""Slot templates, exceptions, reservations and the next-free-slot search (worklist.scheduling)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.factories import (
    DeviceFactory,
    PatientFactory,
    ProcedureTypeFactory,
    at,
    first_step,
    make_order,
)
from worklist import scheduling, services
from worklist.audit import Actor
from worklist.errors import DomainError, ErrorCode
from worklist.models import (
    Modality,
    OpeningPeriod,
    Priority,
    ScheduledProcedureStep,
    ScheduleException,
    SlotReservation,
    Visit,
)

pytestmark = pytest.mark.django_db
DESK = Actor.system("desk")
#: A Monday well ahead, so that "now" never cuts into the searched days.
MONDAY = dt.date.today() + dt.timedelta(days=7 - dt.date.today().weekday() + 7)


def week_template(station, *, opens=dt.time(8), lunch=(dt.time(12), dt.time(13)),
                  closes=dt.time(17), days=range(5)):
    for weekday in days:
        OpeningPeriod.objects.create(station=station, weekday=weekday, opens_at=opens,
                                     closes_at=lunch[0])
        OpeningPeriod.objects.create(station=station, weekday=weekday, opens_at=lunch[1],
                                     closes_at=closes)


@pytest.fixture
def ct():
    station = DeviceFactory(ae_title="CT1", modality=Modality.CT, slot_minutes=15)
    week_template(station)
    station.refresh_from_db()
    return station


@pytest.fixture
def ct_head(ct):
    ptype = ProcedureTypeFactory(code_value="CTHEAD", modality=Modality.CT,
                                 default_duration_minutes=30)
    ptype.stations.add(ct)
    return ptype


def waiting(ptype, **order_fields):
    return first_step(make_order(procedure_type=ptype, **order_fields))


def monday(hour, minute=0, days=0):
    return at(hour, minute, day=MONDAY + dt.timedelta(days=days))


def test_a_template_marks_the_station_as_scheduled_and_refuses_bookings_in_its_breaks(ct, ct_head):
    ct.refresh_from_db()
    assert ct.has_schedule
    step = waiting(ct_head)
    with pytest.raises(DomainError) as refused:
        services.step_schedule(step=step, start=monday(12, 15), station=ct, actor=DESK)
    assert refused.value.code == ErrorCode.OUTSIDE_OPENING_HOURS
    with pytest.raises(DomainError):  # Saturday: no period at all
        services.step_schedule(step=step, start=monday(9, days=5), station=ct, actor=DESK)
    assert services.step_schedule(step=step, start=monday(13), station=ct, actor=DESK)


def test_a_holiday_closes_the_day_and_lists_the_exams_to_rebook(ct, ct_head):
    booked = waiting(ct_head)
    services.step_schedule(step=booked, start=monday(9), station=ct, actor=DESK)
    holiday = ScheduleException.objects.create(
        station=ct, starts=monday(0), ends=monday(0, days=1),
        kind=ScheduleException.Kind.HOLIDAY,
    )
    assert scheduling.affected_steps(holiday) == [booked]
    with pytest.raises(DomainError) as refused:
        services.step_schedule(step=waiting(ct_head), start=monday(10), station=ct, actor=DESK)
    assert refused.value.params["why"] == "HOLIDAY"
    slots = scheduling.next_free_slots(step=booked, after=monday(0), limit=1)
    assert slots[0].start == monday(8, days=1)  # Tuesday's first slot


def test_next_free_slots_skip_booked_time_and_breaks(ct, ct_head):
    services.step_schedule(step=waiting(ct_head), start=monday(8), station=ct, actor=DESK)
    services.step_schedule(step=waiting(ct_head), start=monday(11, 30), station=ct, actor=DESK)
    slots = scheduling.next_free_slots(step=waiting(ct_head), after=monday(0), limit=12)
    starts = [timezone_hm(s.start) for s in slots]
    assert starts[:3] == ["08:30", "08:45", "09:00"]
    assert "11:30" not in starts and "11:15" not in starts  # would run into 11:30
    assert all(not ("11:45" <= hm < "13:00") for hm in starts)


def timezone_hm(moment):
    from django.utils import timezone

    return timezone.localtime(moment).strftime("%H:%M")


def test_a_reserved_slot_is_offered_only_to_the_cases_it_is_kept_for(ct, ct_head):
    SlotReservation.objects.create(station=ct, weekday=0, starts_at=dt.time(8),
                                   ends_at=dt.time(9), kind=SlotReservation.Kind.URGENT)
    routine = scheduling.next_free_slots(step=waiting(ct_head), after=monday(0), limit=1)
    urgent = scheduling.next_free_slots(
        step=waiting(ct_head, priority=Priority.STAT), after=monday(0), limit=1
    )
    assert routine[0].start == monday(9)
    assert (urgent[0].start, urgent[0].reserved) == (monday(8), "URGENT")


def test_an_inpatient_slot_takes_inpatients(ct, ct_head):
    SlotReservation.objects.create(station=ct, weekday=0, starts_at=dt.time(8),
                                   ends_at=dt.time(9), kind=SlotReservation.Kind.INPATIENT)
    patient = PatientFactory()
    visit = Visit.objects.create(patient=patient, admission_id="ADM1", patient_class="I")
    step = waiting(ct_head, patient=patient, visit=visit)
    assert scheduling.next_free_slots(step=step, after=monday(0), limit=1)[0].start == monday(8)


def test_one_patient_is_never_offered_two_rooms_at_once(ct, ct_head):
    mr = DeviceFactory(ae_title="MR1", modality=Modality.MR)
    mr_brain = ProcedureTypeFactory(code_value="MRBRAIN", modality=Modality.MR,
                                    default_duration_minutes=45)
    mr_brain.stations.add(mr)
    patient = PatientFactory()
    services.step_schedule(step=waiting(mr_brain, patient=patient), start=monday(8),
                           station=mr, actor=DESK)
    slots = scheduling.next_free_slots(step=waiting(ct_head, patient=patient),
                                       after=monday(0), limit=1)
    assert slots[0].start == monday(8, 45)


def test_two_contrast_exams_of_a_patient_keep_the_contrast_gap(ct, ct_head, settings):
    settings.RIS_CONTRAST_GAP_MINUTES = 120
    ct_head.contrast = True
    ct_head.save()
    patient = PatientFactory()
    services.step_schedule(step=waiting(ct_head, patient=patient), start=monday(8),
                           station=ct, actor=DESK)
    slots = scheduling.next_free_slots(step=waiting(ct_head, patient=patient),
                                       after=monday(0), limit=1)
    assert slots[0].start == monday(10, 30)  # 08:30 end + 120 min


def test_the_search_spans_the_stations_that_perform_the_procedure(ct, ct_head):
    ct2 = DeviceFactory(ae_title="CT2", modality=Modality.CT)
    week_template(ct2, opens=dt.time(7))
    ct_head.stations.add(ct2)
    slots = scheduling.next_free_slots(step=waiting(ct_head), after=monday(0), limit=2)
    assert [(s.station.ae_title, timezone_hm(s.start)) for s in slots] == [
        ("CT2", "07:00"), ("CT2", "07:15")
    ]


def test_book_first_free_books_the_first_slot_or_leaves_the_step_waiting(ct, ct_head):
    step = services.step_book_first_free(step=waiting(ct_head), actor=DESK, after=monday(0))
    assert (step.station, step.scheduled_start) == (ct, monday(8))
    ScheduleException.objects.create(station=ct, starts=monday(0), ends=monday(0, days=60),
                                     kind=ScheduleException.Kind.DOWN)
    assert services.step_book_first_free(step=waiting(ct_head), actor=DESK,
                                         after=monday(0)) is None


@pytest.fixture
def ct2(ct):
    station = DeviceFactory(ae_title="CT2", modality=Modality.CT, slot_minutes=10)
    week_template(station, opens=dt.time(7, 30), lunch=(dt.time(11, 30), dt.time(12)))
    station.refresh_from_db()
    return station


#: (patient, PV1-2 class): two outpatients and an inpatient, so that both kinds of reserved
#: time meet cases that may and may not use them.
PATIENT_CLASSES = ["O", "", "I"]
RESERVED = [
    # (station fixture name, weekday, from, to, kind)
    ("ct", 0, dt.time(8), dt.time(9), SlotReservation.Kind.URGENT),
    ("ct2", 0, dt.time(7, 30), dt.time(9, 30), SlotReservation.Kind.INPATIENT),
    ("ct", 1, dt.time(13), dt.time(15), SlotReservation.Kind.INPATIENT),
]


@hsettings(max_examples=30, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    bookings=st.lists(
        st.tuples(
            st.integers(0, len(PATIENT_CLASSES) - 1),  # which patient
            st.sampled_from([10, 15, 20, 30, 45, 60]),  # minutes
            st.booleans(),  # contrast
            st.sampled_from([Priority.ROUTINE, Priority.HIGH, Priority.STAT, Priority.LOW]),
            st.integers(0, 2),  # which of the first three offers the clerk clicks
            st.integers(0, 2),  # search from Monday + this many half days
        ),
        min_size=1, max_size=14,
    )
)
def test_booking_whatever_the_search_offers_never_overlaps_a_station_or_a_patient(
    ct, ct2, bookings, settings
):
    """Book each request into one of the slots offered (two stations, both kinds of reserved
    time, inpatients and outpatients, contrast); afterwards no station and no patient holds two
    overlapping exams, a patient's two contrast exams keep the gap, and reserved time holds only
    the cases it is kept for."""
    settings.RIS_CONTRAST_GAP_MINUTES = 120
    stations = {"ct": ct, "ct2": ct2}
    reserved = []
    for name, weekday, a, b, kind in RESERVED:
        SlotReservation.objects.get_or_create(
            station=stations[name], weekday=weekday, starts_at=a, ends_at=b, kind=kind
        )
        day = MONDAY + dt.timedelta(days=weekday)
        reserved.append((stations[name].pk, at(a.hour, a.minute, day=day),
                         at(b.hour, b.minute, day=day), kind))
    patients = []
    for n, patient_class in enumerate(PATIENT_CLASSES):
        patient = PatientFactory()
        visit = Visit.objects.create(patient=patient, admission_id=f"ADM{n}",
                                     patient_class=patient_class) if patient_class else None
        patients.append((patient, visit))
    ptypes = {}
    try:
        for who, minutes, contrast, priority, pick, half_days in bookings:
            key = (minutes, contrast)
            if key not in ptypes:
                ptypes[key] = ProcedureTypeFactory(modality=Modality.CT,
                                                   default_duration_minutes=minutes,
                                                   contrast=contrast)
                ptypes[key].stations.add(ct, ct2)
            patient, visit = patients[who]
            step = waiting(ptypes[key], patient=patient, visit=visit, priority=priority)
            slots = scheduling.next_free_slots(
                step=step, after=monday(0) + dt.timedelta(hours=12 * half_days), limit=3,
                horizon_days=3,
            )
            if slots:
                slot = slots[min(pick, len(slots) - 1)]
                services.step_schedule(step=step, start=slot.start, station=slot.station,
                                       actor=DESK)
        booked = list(
            ScheduledProcedureStep.objects.filter(status__in=scheduling.OCCUPYING)
            .select_related("requested_procedure__order__visit",
                            "requested_procedure__procedure_type")
            .order_by("scheduled_start")
        )
        gap = dt.timedelta(minutes=120)
        for i, a in enumerate(booked):
            order_a = a.requested_procedure.order
            for b in booked[i + 1:]:
                same_patient = order_a.patient_id == b.requested_procedure.order.patient_id
                overlap = (a.scheduled_start < b.scheduled_end
                           and b.scheduled_start < a.scheduled_end)
                assert not (overlap and a.station_id == b.station_id), (a, b)
                assert not (overlap and same_patient), (a, b)
                both_contrast = (a.requested_procedure.procedure_type.contrast
                                 and b.requested_procedure.procedure_type.contrast)
                if same_patient and both_contrast:
                    assert (b.scheduled_start >= a.scheduled_end + gap
                            or a.scheduled_start >= b.scheduled_end + gap), (a, b)
            patient_class = order_a.visit.patient_class if order_a.visit_id else ""
            priority = a.requested_procedure.priority or order_a.priority
            for station_id, r_start, r_end, kind in reserved:
                if (a.station_id == station_id and a.scheduled_start < r_end
                        and r_start < a.scheduled_end):
                    assert scheduling.may_use(kind, priority=priority,
                                              patient_class=patient_class), (a, kind)
    finally:
        ScheduledProcedureStep.objects.all().delete()
        Visit.objects.all().delete()


@hsettings(max_examples=40, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.integers(-10, 10),
    days=st.integers(0, 40),
    exceptions=st.lists(st.tuples(st.integers(-5, 30), st.integers(0, 23), st.integers(1, 60)),
                        max_size=3),
)
def test_open_minutes_of_a_range_equal_the_sum_of_its_days_windows(ct, first, days, exceptions):
    """The statistics page's per-weekday count (``StationWeek.open_minutes``) agrees with
    building every day's open windows, exceptions included."""
    start_day = MONDAY + dt.timedelta(days=first)
    last_day = start_day + dt.timedelta(days=days)
    ScheduleException.objects.filter(station=ct).delete()
    for day, hour, hours in exceptions:
        begin = at(hour, day=MONDAY + dt.timedelta(days=day))
        ScheduleException.objects.create(station=ct, starts=begin,
                                         ends=begin + dt.timedelta(hours=hours),
                                         kind=ScheduleException.Kind.MAINTENANCE)
    week = scheduling.station_weeks([ct], at(0, day=start_day),
                                    at(0, day=last_day + dt.timedelta(days=1)))[0]
    brute = 0
    day = start_day
    while day <= last_day:
        brute += sum(int((b - a).total_seconds() // 60) for a, b in week.open_windows(day))
        day += dt.timedelta(days=1)
    assert week.open_minutes(start_day, last_day) == brute
