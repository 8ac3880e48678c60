"""The booking's overlap check on a station (``services._first_clash``): bounded from both sides,
so that its cost does not grow with the station's history, and still exact for long steps."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import DeviceFactory, ProcedureTypeFactory, at, first_step, make_order
from worklist import services
from worklist.audit import Actor
from worklist.errors import ScheduleConflict
from worklist.models import StepStatus

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")
DAY = dt.date(2031, 5, 12)


def _booked(station, hours: int, minutes: int = 0, *, day=DAY, duration: int = 15):
    step = first_step(make_order(procedure_type=ProcedureTypeFactory(
        code_value=f"P{duration}", default_duration_minutes=duration)))
    return services.step_schedule(step=step, start=at(hours, minutes, day=day), station=station,
                                  actor=ACTOR, duration_minutes=duration)


def _book(station, hours: int, minutes: int = 0, *, day=DAY):
    return _booked(station, hours, minutes, day=day)


def test_a_step_that_overlaps_the_start_is_a_clash():
    station = DeviceFactory(ae_title="CT1")
    _booked(station, 9, 50, duration=20)

    with pytest.raises(ScheduleConflict, match="CT1 is booked from 2031-05-12 09:50"):
        _book(station, 10)


def test_a_step_that_ended_before_the_start_is_no_clash():
    station = DeviceFactory(ae_title="CT1")
    _booked(station, 9, 40, duration=20)

    assert _book(station, 10).scheduled_start == at(10, day=DAY)


def test_a_long_step_that_started_hours_earlier_is_still_a_clash():
    station = DeviceFactory(ae_title="CT1")
    # Longer than the near arm's window: only the duration index finds it.
    long = services.SHORT_STEP_MINUTES + 120
    _booked(station, 0, 30, duration=long)

    with pytest.raises(ScheduleConflict, match="CT1 is booked from 2031-05-12 00:30"):
        _book(station, 10)


def test_the_earliest_of_several_clashes_is_named():
    station = DeviceFactory(ae_title="CT1", allow_overbooking=True)  # as an import may have left it
    _booked(station, 9, 55, duration=10)
    _booked(station, 1, duration=services.SHORT_STEP_MINUTES + 600)
    station.allow_overbooking = False
    station.save()

    with pytest.raises(ScheduleConflict, match="booked from 2031-05-12 01:00"):
        _book(station, 10)


def test_a_step_on_another_station_or_cancelled_is_no_clash():
    station, other = DeviceFactory(ae_title="CT1"), DeviceFactory(ae_title="CT2")
    _booked(other, 10)
    cancelled = _booked(station, 10)
    services.step_transition(step=cancelled, to=StepStatus.CANCELED, actor=ACTOR, reason="test")

    assert _book(station, 10).station == station


def test_moving_a_step_does_not_clash_with_itself():
    station = DeviceFactory(ae_title="CT1")
    step = _booked(station, 10, duration=30)

    moved = services.step_schedule(step=step, start=at(10, 15, day=DAY), actor=ACTOR)
    assert moved.scheduled_start == at(10, 15, day=DAY)


def test_the_overlap_check_reads_a_bounded_range_of_the_station():
    station = DeviceFactory(ae_title="CT1")
    start = at(10, day=DAY)
    with CaptureQueriesContext(connection) as queries:
        assert services._first_clash(station, start, start + dt.timedelta(minutes=15),
                                     exclude=None) is None
    captured = [q["sql"] for q in queries.captured_queries]
    assert len(captured) == 1 and "UNION ALL" in captured[0], captured
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {captured[0]}")
        plan = [str(row[-1]) for row in cursor.fetchall()]
    text = " ".join(plan)
    # Both arms are index searches with two bounds, neither a scan of the station's history.
    assert "sps_station_start_idx (station_id=? AND scheduled_start>? AND scheduled_start<?)" \
        in text, plan
    assert "sps_station_duration_idx (station_id=? AND expected_duration_minutes>? AND " \
        "expected_duration_minutes<?)" in text, plan
