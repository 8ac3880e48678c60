"""The statistics page: charts with the demo data, rates, utilisation, CSV, query count."""

from __future__ import annotations

import csv
import datetime as dt
import io

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
