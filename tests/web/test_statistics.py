"""The statistics page: charts with the demo data, rates, utilisation, CSV, query count."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import at, first_step, make_order
from worklist import services
from worklist.audit import Actor
from worklist.models import OpeningPeriod

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def _department(ct_head, ct1, n=4):
    for weekday in range(7):
        OpeningPeriod.objects.create(station=ct1, weekday=weekday, opens_at=dt.time(8),
                                     closes_at=dt.time(12))
    steps = [first_step(make_order(procedure_type=ct_head, station=ct1,
                                   start=at(8 + i % 4, day=TOMORROW))) for i in range(n)]
    services.step_no_show(step=steps[0], actor=Actor.system("desk"), reason_code="unwell")
    return steps


def test_the_page_draws_the_chart_and_the_station_rates(desk, ct_head, ct1):
    _department(ct_head, ct1)
    page = desk.get(reverse("web:statistics"), {"to": TOMORROW.isoformat()})
    text = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in text and "<rect" in text
    row = next(r for r in page.context["stats"].stations if r.ae_title == "CT1")
    assert (row.exams, row.no_shows) == (4, 1)
    # three booked 20-minute exams (the no-show frees its slot) against 30 days of 08-12
    assert (row.booked_minutes, row.open_minutes) == (60, 30 * 240)
    assert row.utilisation == 60 / (30 * 240)


def test_every_table_exports_as_csv(desk, ct_head, ct1):
    _department(ct_head, ct1)
    for table in ("modality", "stations", "lead", "turnaround"):
        response = desk.get(reverse("web:statistics"),
                            {"to": TOMORROW.isoformat(), "csv": table})
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0]
    stations = desk.get(reverse("web:statistics"), {"to": TOMORROW.isoformat(), "csv": "stations"})
    body = list(csv.reader(io.StringIO(stations.content.decode("utf-8-sig"))))
    assert body[1][:3] == ["CT1", "CT", "4"]
    from worklist.models import AuditEvent

    exports = AuditEvent.objects.filter(action="export.statistics")
    assert list(exports.order_by("id").values_list("object_id", flat=True)) == [
        "modality", "stations", "lead", "turnaround", "stations"]


def test_the_page_costs_the_same_queries_for_many_exams(desk, ct_head, ct1):
    _department(ct_head, ct1, n=2)
    url = reverse("web:statistics")
    with CaptureQueriesContext(connection) as few:
        desk.get(url, {"to": TOMORROW.isoformat()})
    for i in range(12):
        make_order(procedure_type=ct_head, station=ct1, start=at(8, 20 * (i % 3), day=TOMORROW
                   + dt.timedelta(days=i // 3)))
    with CaptureQueriesContext(connection) as many:
        desk.get(url, {"to": (TOMORROW + dt.timedelta(days=5)).isoformat()})
    assert len(many) == len(few)



@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "UTC"])
@pytest.mark.parametrize("group", ["day", "week", "month"])
def test_the_counts_per_period_follow_the_department_day(ct_head, ct1, settings, zone, group):
    """Exams just before and after local midnight land on their local day, with a fixed
    offset (the native day number on SQLite) and across a daylight-saving change (TruncDate);
    weeks start on Monday and months on the 1st, as the database's own truncation did."""
    from django.utils import timezone

    from web.statistics import TRUNC, statistics

    settings.TIME_ZONE = zone
    timezone.activate(zone)
    try:
        ct1.opens_at = ct1.closes_at = None
        ct1.save()
        first = dt.date(2026, 3, 20)  # Europe/Berlin springs forward on 2026-03-29
        starts = []
        for offset in range(0, 24, 3):
            day = first + dt.timedelta(days=offset)
            for hour, minute in ((0, 5), (23, 50), (12, 0)):
                starts.append(timezone.make_aware(dt.datetime.combine(day, dt.time(hour, minute))))
        for start in starts:
            make_order(procedure_type=ct_head, station=ct1, start=start)
        stats = statistics(first, first + dt.timedelta(days=30), group=group)
        expected: dict = {}
        for start in starts:
            key = (TRUNC[group](timezone.localtime(start).date()), "CT")
            expected[key] = expected.get(key, 0) + 1
        assert stats.per_modality == expected
        assert stats.periods == sorted({period for period, _ in expected})
    finally:
        timezone.deactivate()


def test_the_mean_times_are_the_databases_own_arithmetic(ct_head, ct1):
    """Lead time (ordered -> scheduled) and turnaround (MPPS start -> end) in hours and
    minutes, computed natively (no per-row Python function on SQLite)."""
    from mpps.models import PerformedProcedureStep
    from web.statistics import statistics
    from worklist.models import Order

    ct1.opens_at = ct1.closes_at = None
    ct1.save()
    starts = [at(9, day=TOMORROW), at(15, day=TOMORROW)]
    for start in starts:
        make_order(procedure_type=ct_head, station=ct1, start=start)
    created = {o.pk: o.created_at for o in Order.objects.all()}
    expected_hours = sum(
        (s - c).total_seconds() / 3600 for s, c in zip(starts, sorted(created.values()),
                                                        strict=True)
    ) / 2
    for n, minutes in enumerate((20, 41)):
        PerformedProcedureStep.objects.create(
            sop_instance_uid=f"2.25.{n + 1}", status="COMPLETED", pps_id=str(n),
            station_ae_title="CT1", modality="CT", started_at=starts[n],
            ended_at=starts[n] + dt.timedelta(minutes=minutes),
        )
    stats = statistics(TOMORROW, TOMORROW)
    hours, exams = stats.lead_hours["CT"]
    assert exams == 2 and abs(hours - expected_hours) < 0.01
    assert stats.turnaround_minutes["CT1"] == (pytest.approx(30.5, abs=0.01), 2)
