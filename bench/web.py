"""Web UI server time: day calendar, dashboard and patient search with 100k scheduled steps.

Loads 100,000 scheduled steps (20 stations in 5 modalities, spread over 250 days, 07:00-19:00,
so a day has 400 steps and a station 20; one patient, order and requested procedure each, with
Chinese and alphabetic names), written with ``bulk_create`` because going through
``services.order_create`` would take longer than the measurement and changes nothing about reads.
Then times, in this process with Django's test client as a logged-in front-desk user (the full
request: middleware, session, auth, queries, template rendering; no network):

- ``GET /calendar/?date=D``            day view, all 20 stations (400 blocks)
- ``GET /calendar/?date=D&view=week&station=S``
- ``GET /?date=D``                     the dashboard
- ``GET /patients/?q=王小东``           ideographic search (50 rows shown)
- ``GET /patients/?q=wang xiaodong``   alphabetic search
- ``GET /patients/?q=BP0050000``       patient ID

Median and p95 in ms over ``--requests`` runs after a warm-up, and the queries per request.

    python3 bench/web.py                                   # SQLite (fresh file in a temp dir)
    python3 bench/web.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, fresh_database  # noqa: E402

STATIONS = [
    (f"{modality}{n}", modality)
    for modality in ("CT", "MR", "US", "CR", "DX")
    for n in (1, 2, 3, 4)
]
DAYS = 250
BATCH = 5_000
FAMILY = [("Wang", "王"), ("Li", "李"), ("Zhang", "张"), ("Liu", "刘"), ("Chen", "陈"),
          ("Yang", "杨"), ("Zhao", "赵"), ("Huang", "黄"), ("Zhou", "周"), ("Wu", "吴")]
GIVEN = [("XiaoDong", "小东"), ("Na", "娜"), ("Wei", "伟"), ("Jing", "静"), ("Min", "敏"),
         ("Lei", "磊"), ("Yan", "燕"), ("Jun", "军"), ("Fang", "芳"), ("Tao", "涛"), ("Hui", "慧")]


def load_steps(total: int, first_day: dt.date, days: int = DAYS) -> None:
    from django.db import transaction
    from django.utils import timezone

    from worklist import pn
    from worklist.models import (
        Device,
        Order,
        Patient,
        PatientNameKey,
        ProcedureType,
        RequestedProcedure,
        ScheduledProcedureStep,
        StepStatus,
    )

    devices = [
        Device.objects.create(ae_title=ae, modality=modality, station_name=ae,
                              opens_at=dt.time(7), closes_at=dt.time(19))
        for ae, modality in STATIONS
    ]
    ptypes = {
        modality: ProcedureType.objects.create(
            code_value=f"{modality}ROUTINE", code_meaning=f"{modality} routine", modality=modality,
            default_duration_minutes=30,
        )
        for modality in {m for _, m in STATIONS}
    }
    per_day = total // days
    per_station = per_day // len(devices)
    spacing = 720 // per_station
    statuses = [StepStatus.SCHEDULED] * 6 + [StepStatus.COMPLETED, StepStatus.ARRIVED]
    for offset in range(0, total, BATCH):
        numbers = range(offset, min(total, offset + BATCH))
        with transaction.atomic():
            patients = []
            for n in numbers:
                fam, giv = FAMILY[n % len(FAMILY)], GIVEN[(n // 7) % len(GIVEN)]
                patients.append(Patient(
                    patient_id=f"BP{n:07d}", issuer="BENCH",
                    name_alphabetic=f"{fam[0]}^{giv[0]}", name_ideographic=f"{fam[1]}^{giv[1]}",
                    family_name=fam[0], given_name=giv[0],
                    birth_date=dt.date(1950, 1, 1) + dt.timedelta(days=n % 20000),
                    sex="MF"[n % 2],
                ))
            patients = Patient.objects.bulk_create(patients)
            # bulk_create sends no post_save: the search keys as worklist.receivers writes them
            PatientNameKey.objects.bulk_create(
                PatientNameKey(patient=patient, key=key)
                for patient in patients
                for key in pn.search_keys(patient.person_name)
            )
            orders = Order.objects.bulk_create(
                Order(patient=patient, accession_number=f"B{n:09d}",
                      filler_order_number=f"B{n:09d}", source=Order.Source.IMPORT)
                for n, patient in zip(numbers, patients, strict=True)
            )
            procedures = RequestedProcedure.objects.bulk_create(
                RequestedProcedure(
                    order=order, procedure_type=ptypes[devices[n % len(devices)].modality],
                    requested_procedure_id=f"BR{n:08d}",
                    description=ptypes[devices[n % len(devices)].modality].code_meaning,
                    code_value="X", code_scheme="L", code_meaning="X",
                    study_instance_uid=f"2.25.{10**20 + n}",
                )
                for n, order in zip(numbers, orders, strict=True)
            )
            steps = []
            for n, procedure in zip(numbers, procedures, strict=True):
                device = devices[n % len(devices)]
                day = first_day + dt.timedelta(days=n // per_day)
                slot = (n % per_day) // len(devices)
                start = timezone.make_aware(
                    dt.datetime.combine(day, dt.time(7)) + dt.timedelta(minutes=slot * spacing)
                )
                steps.append(ScheduledProcedureStep(
                    requested_procedure=procedure, sps_id=f"BS{n:08d}", station=device,
                    modality=device.modality, scheduled_start=start,
                    expected_duration_minutes=30,
                    scheduled_end=start + dt.timedelta(minutes=30),
                    description=procedure.description, status=statuses[n % len(statuses)],
                ))
            ScheduledProcedureStep.objects.bulk_create(steps)


def measure(client, path: str, requests: int) -> tuple[list[float], list[float], int, int]:
    from django.db import connection

    for _ in range(3):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(path)
    durations, cpu = [], []
    for _ in range(requests):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(path)
        durations.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return durations, cpu, len(queries), len(response.content)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--days", type=int, default=DAYS, help="days the steps are spread over")
    parser.add_argument("--profile", action="store_true", help="cProfile each page once")
    args = parser.parse_args()

    url, data_dir = fresh_database(args.database_url, "web")
    os.environ.update({"DATABASE_URL": url, "RIS_DATA_DIR": data_dir,
                       "DJANGO_SETTINGS_MODULE": "ris.settings"})
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    # No setup_test_environment(): its template instrumentation copies every context and would
    # be measured too. ALLOWED_HOSTS is "*" by default, so the test client's host is accepted.
    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        first_day = timezone.localdate() - dt.timedelta(days=args.days // 2)
        load_steps(args.steps, first_day, args.days)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        print(f"{connection.vendor}: loaded {args.steps:,} steps in "
              f"{time.perf_counter() - started:.0f} s")
        user = User.objects.create_user("desk")
        user.groups.add(Group.objects.get(name="front desk"))
        client = Client()
        client.force_login(user)
        day = timezone.localdate()
        from worklist.models import Device

        station = Device.objects.get(ae_title="CT1").pk
        pages = [
            ("day calendar (20 stations)", f"/calendar/?date={day}"),
            ("week calendar (1 station)", f"/calendar/?date={day}&view=week&station={station}"),
            ("dashboard", f"/?date={day}"),
            ("patient search 王小东", "/patients/?q=王小东"),
            ("patient search wang xiaodong", "/patients/?q=wang+xiaodong"),
            ("patient search by ID", "/patients/?q=BP0050000"),
        ]
        print(f"{'page':32} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>8} {'queries':>8} "
              f"{'KiB':>6}")
        for label, path in pages:
            durations, cpu, queries, size = measure(client, path, args.requests)
            print(f"{label:32} {statistics.median(durations):10.1f} {p95(durations):8.1f} "
                  f"{statistics.median(cpu):8.1f} {queries:8d} {size / 1024:6.0f}")
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.runcall(client.get, path)
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    finally:
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
