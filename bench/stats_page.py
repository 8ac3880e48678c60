"""Statistics page server time with 100k scheduled steps, and the plan of each of its queries.

Loads the 100,000 steps of ``bench/web.py`` (20 stations in 5 modalities over 250 days, written
with ``bulk_create``), then, with bulk UPDATEs and INSERTs, makes a department's mix of them: a
tenth no-shows (``no-show:<code>``), a twentieth cancelled by the desk (``cancel:<code>``), and
one performed step (MPPS, 25 minutes) per completed exam; every station gets a weekly template
(07:00-12:00, 13:00-19:00, Monday to Friday) so that utilisation has something to divide by.
Then times, in this process with Django's test client as a logged-in front-desk user:

- ``GET /statistics/``                                the default: 30 days by day
- ``GET /statistics/?from=..&to=..&group=week``       90 days by week
- ``GET /statistics/?from=..&to=..&group=month``      a year (the page's limit) by month
- ``GET /statistics/?...&csv=stations``               the station table of that year as CSV
- ``web.statistics.statistics()``                     the selector alone, 30 days and a year

Median and p95 in ms over ``--requests`` runs after a warm-up, the queries per request, and the
database's plan of every query of the year page (SQLite ``EXPLAIN QUERY PLAN``, PostgreSQL
``EXPLAIN``), so a query that reads the whole step table shows up as such.

    python3 bench/stats_page.py                                   # SQLite (fresh temp file)
    python3 bench/stats_page.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics as stats_lib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, fresh_database  # noqa: E402
from bench.web import DAYS, load_steps, measure, p95  # noqa: E402

BATCH = 5_000


def department_mix() -> dict[str, int]:
    """No-shows, desk cancels, performed steps and weekly templates on the loaded steps."""
    from django.db import transaction

    from mpps.models import PerformedProcedureStep, StepLink
    from worklist.models import Device, OpeningPeriod, ScheduledProcedureStep, StepStatus

    steps = ScheduledProcedureStep.objects
    ids = list(steps.order_by("pk").values_list("pk", flat=True))
    no_show = ids[3::10]
    cancelled = ids[7::20]
    with transaction.atomic():
        for chunk in range(0, len(no_show), BATCH):
            steps.filter(pk__in=no_show[chunk:chunk + BATCH]).update(
                status=StepStatus.CANCELED, status_reason="no-show:did_not_come"
            )
        for chunk in range(0, len(cancelled), BATCH):
            steps.filter(pk__in=cancelled[chunk:chunk + BATCH]).update(
                status=StepStatus.CANCELED, status_reason="cancel:patient_request"
            )
        OpeningPeriod.objects.bulk_create(
            OpeningPeriod(station=station, weekday=weekday, opens_at=a, closes_at=b)
            for station in Device.objects.all()
            for weekday in range(5)
            for a, b in ((dt.time(7), dt.time(12)), (dt.time(13), dt.time(19)))
        )
        Device.objects.update(has_schedule=True)
    completed = steps.filter(status=StepStatus.COMPLETED).select_related("station")
    performed = 0
    for offset in range(0, completed.count(), BATCH):
        chunk = list(completed.order_by("pk")[offset:offset + BATCH])
        with transaction.atomic():
            made = PerformedProcedureStep.objects.bulk_create(
                PerformedProcedureStep(
                    sop_instance_uid=f"2.25.{7 * 10**20 + step.pk}",
                    status="COMPLETED",
                    pps_id=f"P{step.pk}"[:16],
                    station_ae_title=step.station.ae_title,
                    modality=step.modality,
                    started_at=step.scheduled_start,
                    ended_at=step.scheduled_start + dt.timedelta(minutes=25),
                )
                for step in chunk
            )
            StepLink.objects.bulk_create(
                StepLink(pps=pps, step=step) for pps, step in zip(made, chunk, strict=True)
            )
        performed += len(made)
    return {"no-shows": len(no_show), "desk cancels": len(cancelled), "performed": performed}


def query_plans(client, path: str) -> list[tuple[str, str]]:
    """(the query's first words, its plan) for every SELECT of one request of ``path``."""
    from django.db import connection

    captured: list[tuple[str, tuple]] = []

    def keep(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        client.get(path)
    plans = []
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        for sql, params in captured:
            if not sql.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute(prefix + sql, params)
            rows = cursor.fetchall()
            plan = " | ".join(str(row[-1]) if connection.vendor == "sqlite" else row[0]
                              for row in rows)
            plans.append((" ".join(sql.split()[:8])[:90], plan))
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--days", type=int, default=DAYS, help="days the steps are spread over")
    parser.add_argument("--plans", action="store_true", help="print every query plan in full")
    args = parser.parse_args()

    url, data_dir = fresh_database(args.database_url, "stats")
    os.environ.update({"DATABASE_URL": url, "RIS_DATA_DIR": data_dir,
                       "DJANGO_SETTINGS_MODULE": "ris.settings"})
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from web.statistics import statistics

    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        first_day = timezone.localdate() - dt.timedelta(days=args.days // 2)
        load_steps(args.steps, first_day, args.days)
        mix = department_mix()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(f"{connection.vendor}: loaded {args.steps:,} steps ({mix}) in "
              f"{time.perf_counter() - started:.0f} s; load average "
              f"{os.getloadavg()[0]:.1f}")
        user = User.objects.create_user("desk")
        user.groups.add(Group.objects.get(name="front desk"))
        client = Client()
        client.force_login(user)
        today = timezone.localdate()
        quarter = f"from={today - dt.timedelta(days=89)}&to={today}"
        year = f"from={today - dt.timedelta(days=365)}&to={today}"
        pages = [
            ("statistics, 30 days by day", "/statistics/"),
            ("statistics, 90 days by week", f"/statistics/?{quarter}&group=week"),
            ("statistics, a year by month", f"/statistics/?{year}&group=month"),
            ("station table CSV, a year", f"/statistics/?{year}&group=month&csv=stations"),
        ]
        print(f"{'page':34} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>8} {'queries':>8} "
              f"{'KiB':>6}")
        for label, path in pages:
            durations, cpu, queries, size = measure(client, path, args.requests)
            print(f"{label:34} {stats_lib.median(durations):10.1f} {p95(durations):8.1f} "
                  f"{stats_lib.median(cpu):8.1f} {queries:8d} {size / 1024:6.0f}")
        for label, first in (("selector, 30 days", today - dt.timedelta(days=29)),
                             ("selector, a year", today - dt.timedelta(days=365))):
            times = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                statistics(first, today, group="month")
                times.append((time.perf_counter() - t0) * 1000)
            print(f"{label:34} {stats_lib.median(times):10.1f} {p95(times):8.1f}")
        # Reference in the same run: the station open time of a year counted as the page did
        # before, building every day's windows, against the per-weekday count it uses now.
        from web.selectors import day_bounds, stations
        from worklist.scheduling import station_weeks

        first = today - dt.timedelta(days=365)
        weeks = station_weeks(list(stations()), day_bounds(first)[0], day_bounds(today)[1])
        for label, count in (
            ("open time of a year, per day (old)", lambda: sum(
                sum(int((b - a).total_seconds() // 60) for a, b in w.open_windows(
                    first + dt.timedelta(days=n)))
                for w in weeks for n in range((today - first).days + 1))),
            ("open time of a year, per weekday", lambda: sum(
                w.open_minutes(first, today) or 0 for w in weeks)),
        ):
            times = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                total = count()
                times.append((time.perf_counter() - t0) * 1000)
            print(f"{label:34} {stats_lib.median(times):10.1f} {p95(times):8.1f}  "
                  f"({total:,} min)")
        print(f"load average {os.getloadavg()[0]:.1f}")
        # SQLite: SEARCH reads a range of an index, SCAN the whole table (or index);
        # PostgreSQL: Seq Scan is the whole table. A range covering a large share of the steps
        # (a year of the bench's 250 days is half the table) is read faster whole, and the
        # PostgreSQL planner rightly chooses so; the plans of the default page show the index.
        for label, path in (pages[0], pages[2]):
            print(f"query plans of {label}:")
            for head, plan in query_plans(client, path):
                whole = "SCAN " in plan.replace("SCAN CONSTANT", "") or "Seq Scan" in plan
                print(f"  [{'whole table' if whole else 'index range'}] {head}")
                if args.plans:
                    print(f"      {plan}")
    finally:
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
