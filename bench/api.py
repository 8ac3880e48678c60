"""REST API latency: the scheduled steps of one day, with 100k steps in the database.

Loads 100,000 scheduled steps (20 stations, 5 modalities, 30 days, about 3,300 a day; one
patient, order and requested procedure each, written with ``bulk_create`` because going through
``services.order_create`` would take longer than the measurement itself and changes nothing about
reads), starts a real ``ris serve --only web`` (gunicorn, as deployed) and times, over one
keep-alive HTTP connection with a token:

- ``GET /api/v1/steps/?date=D``                        (first page, 50 rows, with the count)
- ``GET /api/v1/steps/?date=D&station=CT1``            (one station's day)
- ``GET /api/v1/steps/?date=D&page_size=500``          (a big page: cost per row)
- ``GET /api/v1/steps/?date=D&modality=MR&status=SCHEDULED&page=3``

Each query is run ``--requests`` times after a warm-up; median and p95 are printed in ms (whole
HTTP request as the client sees it, on loopback).

    python3 bench/api.py                                   # SQLite
    python3 bench/api.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, free_port, fresh_database, start_serve  # noqa: E402

STATIONS = [
    (f"{modality}{n}", modality)
    for modality in ("CT", "MR", "US", "CR", "DX")
    for n in (1, 2, 3, 4)
]
DAYS = 30
BATCH = 5_000


def load_steps(total: int, first_day: dt.date) -> None:
    """``total`` scheduled steps spread over DAYS days and the stations, 07:00-19:00."""
    from django.db import transaction
    from django.utils import timezone

    from worklist.models import (
        Device,
        Order,
        Patient,
        ProcedureType,
        RequestedProcedure,
        ScheduledProcedureStep,
        StepStatus,
    )

    devices = [
        Device.objects.create(
            ae_title=ae, modality=modality, station_name=ae, allow_overbooking=True
        )
        for ae, modality in STATIONS
    ]
    ptypes = {
        modality: ProcedureType.objects.create(
            code_value=f"{modality}ROUTINE", code_meaning=f"{modality} routine", modality=modality
        )
        for modality in {m for _, m in STATIONS}
    }
    slots_per_day = total // DAYS + 1
    for offset in range(0, total, BATCH):
        count = min(BATCH, total - offset)
        numbers = range(offset, offset + count)
        with transaction.atomic():
            patients = Patient.objects.bulk_create(
                Patient(
                    patient_id=f"BP{n:07d}",
                    issuer="BENCH",
                    name_alphabetic=f"Bench^Patient{n}",
                    family_name="Bench",
                    given_name=f"Patient{n}",
                    birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=n % 20000),
                    sex="MF"[n % 2],
                )
                for n in numbers
            )
            orders = Order.objects.bulk_create(
                Order(
                    patient=patient,
                    accession_number=f"B{n:09d}",
                    filler_order_number=f"B{n:09d}",
                    source=Order.Source.IMPORT,
                )
                for n, patient in zip(numbers, patients, strict=True)
            )
            procedures = []
            steps = []
            for n, order in zip(numbers, orders, strict=True):
                device = devices[n % len(devices)]
                ptype = ptypes[device.modality]
                procedures.append(
                    RequestedProcedure(
                        order=order,
                        procedure_type=ptype,
                        requested_procedure_id=f"BR{n:08d}",
                        description=ptype.code_meaning,
                        code_value=ptype.code_value,
                        code_scheme="L",
                        code_meaning=ptype.code_meaning,
                        study_instance_uid=f"2.25.{10**20 + n}",
                    )
                )
            procedures = RequestedProcedure.objects.bulk_create(procedures)
            for n, procedure in zip(numbers, procedures, strict=True):
                device = devices[n % len(devices)]
                day = first_day + dt.timedelta(days=n // slots_per_day)
                minute = (
                    (n % slots_per_day) // len(devices) * 720 // (slots_per_day // len(devices) + 1)
                )
                start = timezone.make_aware(
                    dt.datetime.combine(day, dt.time(7)) + dt.timedelta(minutes=minute)
                )
                steps.append(
                    ScheduledProcedureStep(
                        requested_procedure=procedure,
                        sps_id=f"BS{n:08d}",
                        station=device,
                        modality=device.modality,
                        scheduled_start=start,
                        scheduled_end=start + dt.timedelta(minutes=15),
                        description=procedure.description,
                        status=StepStatus.SCHEDULED,
                    )
                )
            ScheduledProcedureStep.objects.bulk_create(steps)


def _answers_http(port: int):
    def check() -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/api/v1/auth/me/")
            return connection.getresponse().status in (401, 200)
        except OSError:
            return False

    return check


def time_query(port: int, token: str, path: str, requests: int) -> tuple[list[float], dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    durations = []
    body: dict = {}
    for i in range(requests + 5):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}: {payload[:300]!r}")
        if i >= 5:  # warm-up
            durations.append(elapsed)
        body = json.loads(payload)
    connection.close()
    return durations, body


def time_in_process(token: str, path: str, requests: int) -> tuple[list[float], list[float]]:
    """The server's own cost: the same request through Django in this process.

    CPU time is what the request needs of one core, whatever else the machine is doing.
    """
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_ACCEPT="application/json")
    wall, cpu = [], []
    for i in range(requests + 5):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"{path}: HTTP {response.status_code}")
        if i >= 5:
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
    return wall, cpu


def print_plan(day: dt.date) -> None:
    from django.db import connection

    from api.filters import StepFilter
    from api.serializers import step_rows
    from api.views import StepViewSet

    steps = StepFilter({"date": day.isoformat()}, queryset=StepViewSet.queryset.all()).qs
    sql, params = step_rows(steps.order_by("scheduled_start", "sps_id", "pk"))[
        :50
    ].query.sql_with_params()
    analyse = "EXPLAIN ANALYZE " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        cursor.execute(analyse + sql, params)
        for row in cursor.fetchall():
            print("    plan:", " ".join(str(part) for part in row))


def summary(durations: list[float]) -> tuple[float, float]:
    ordered = sorted(durations)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    parser.add_argument(
        "--explain", action="store_true", help="print the query plan of the day list's page"
    )
    args = parser.parse_args()

    admin_url = args.database_url
    url, data_dir = fresh_database(args.database_url, "api")
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "RIS_DATA_DIR": data_dir,
            "RIS_HTTP": f"127.0.0.1:{port}",
            "RIS_ADMIN_PASSWORD": "bench-admin-password",
            "RIS_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "ris.settings",
        }
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from worklist.models import ScheduledProcedureStep

    process = None
    try:
        call_command("migrate", interactive=False, verbosity=0)
        first_day = dt.date(2026, 12, 1)
        started = time.perf_counter()
        load_steps(args.steps, first_day)
        loaded_in = time.perf_counter() - started
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        user = User.objects.create_user("bench-reader")
        user.groups.add(Group.objects.get(name="radiologist"))
        token = Token.objects.create(user=user).key
        day = first_day + dt.timedelta(days=DAYS // 2)
        on_day = ScheduledProcedureStep.objects.filter(scheduled_start__date=day).count()
        vendor = connection.vendor
        connection.close()
        process = start_serve(env, "web", _answers_http(port), "answer HTTP")

        print(
            f"database: {vendor}; {args.steps} steps loaded in {loaded_in:.0f} s; "
            f"{on_day} on {day}; {args.requests} requests per query, keep-alive, token auth"
        )
        queries = [
            f"/api/v1/steps/?date={day}",
            f"/api/v1/steps/?date={day}&station=CT1",
            f"/api/v1/steps/?date={day}&page_size=500",
            f"/api/v1/steps/?date={day}&modality=MR&status=SCHEDULED&page=3",
        ]
        for path in queries:
            durations, body = time_query(port, token, path, args.requests)
            median, p95 = summary(durations)
            print(
                f"  {path:62s} rows {len(body['results']):3d}/{body['count']:5d}  "
                f"median {median:6.1f} ms  p95 {p95:6.1f} ms"
            )
        if args.explain:
            print_plan(day)
        print("in-process (Django test client, no HTTP): wall and CPU time of this process")
        for path in queries:
            wall, cpu = time_in_process(token, path, args.requests)
            print(
                f"  {path:62s} wall median {statistics.median(wall):6.1f} ms  "
                f"p95 {summary(wall)[1]:6.1f} ms  CPU median {statistics.median(cpu):6.1f} ms"
            )
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:  # a loaded machine: do not leave the DB behind
                process.kill()
                process.wait()
        connection.close()
        drop_database(url, admin_url)


if __name__ == "__main__":
    main()
