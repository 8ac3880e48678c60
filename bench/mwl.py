"""Modality Worklist benchmark: ris (``ris dicom``) against DCMTK wlmscpfs on the same data.

    python3 bench/mwl.py --sizes 1000,10000,100000 --wlm-sizes 1000,10000
    python3 bench/mwl.py --database postgresql://postgres@127.0.0.1:5432/postgres --sizes 1000,10000

For each size: a fresh database (SQLite file, or a scratch PostgreSQL database ``ris_bench``),
``ris migrate``, the generated worklist of tests/mwl/wlfiles.py (~20 stations, 5 modalities,
60 days) bulk-loaded, ``ris dicom`` started; wlmscpfs serves the same items as .wl files.
Latencies: a whole ``findscu -W`` process (association, query, release), as a modality sees it;
the same on a new association each time from a minimal one-thread SCU (bench/rawscu.py: no
process start, no client polling threads), which is the figure for "per query including the
association"; and on one open pynetdicom association. Throughput is 8 concurrent findscu loops;
``--one-at-a-time`` measures it also with RIS_MWL_DIRECT_SEND off. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench import rawscu  # noqa: E402
from bench._harness import free_port  # noqa: E402
from tests.mwl.dcmtk import tool  # noqa: E402
from tests.mwl.wlfiles import STATIONS, Spread, worklist_item, write_worklist  # noqa: E402

FIRST_DAY = dt.date(2030, 3, 1)
TODAY = "20300320"
WEEK = "20300320-20300326"


def spread(size: int) -> Spread:
    return Spread(size, FIRST_DAY, days=60, seed=7)


# --- loading (runs inside Django) ---------------------------------------------------------------


def load(size: int) -> None:
    """Bulk-load the generated items straight into the tables (services would take ~40 ms per
    item on this machine: the import path is measured by tests, not here)."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from worklist.dicom import department_zone
    from worklist.models import (
        Device,
        Order,
        Patient,
        RequestedProcedure,
        ScheduledProcedureStep,
    )

    zone = department_zone()
    devices = {s: Device.objects.get_or_create(ae_title=s, defaults={
        "modality": s[:2], "station_name": s})[0] for s in STATIONS}
    rng = random.Random(spread(size).seed)
    patients: dict[str, Patient] = {}
    orders, procedures, steps = [], [], []
    for n in range(1, size + 1):
        ds = worklist_item(n, rng, spread(size))
        pid = str(ds.PatientID)
        if pid not in patients:
            p = Patient(patient_id=pid, issuer="HOSP", sex=ds.PatientSex,
                        birth_date=dt.datetime.strptime(ds.PatientBirthDate, "%Y%m%d").date())
            p.set_person_name(str(ds.PatientName))
            patients[pid] = p
        sps = ds.ScheduledProcedureStepSequence[0]
        start = timezone.make_aware(dt.datetime.strptime(
            sps.ScheduledProcedureStepStartDate + sps.ScheduledProcedureStepStartTime,
            "%Y%m%d%H%M%S"), zone)
        code = ds.RequestedProcedureCodeSequence[0]
        orders.append(Order(accession_number=ds.AccessionNumber, source="IMPORT",
                            referring_physician=str(ds.ReferringPhysicianName),
                            requesting_physician=str(ds.RequestingPhysician),
                            priority=ds.RequestedProcedurePriority))
        procedures.append(RequestedProcedure(
            requested_procedure_id=ds.RequestedProcedureID, study_instance_uid=ds.StudyInstanceUID,
            description=ds.RequestedProcedureDescription, code_value=code.CodeValue,
            code_scheme="L", code_meaning=code.CodeMeaning,
            priority=ds.RequestedProcedurePriority))
        steps.append(ScheduledProcedureStep(
            sps_id=sps.ScheduledProcedureStepID, station=devices[sps.ScheduledStationAETitle],
            modality=sps.Modality, scheduled_start=start,
            scheduled_end=start + dt.timedelta(minutes=15),
            performing_physician=str(sps.ScheduledPerformingPhysicianName),
            description=sps.ScheduledProcedureStepDescription,
            protocol_codes=[{"value": f"{code.CodeValue}-P", "scheme": "L",
                             "meaning": f"{code.CodeMeaning} protocol"}],
            location=sps.ScheduledProcedureStepLocation, status="SCHEDULED"))
        orders[-1]._pid = pid
    with transaction.atomic():
        Patient.objects.bulk_create(patients.values(), batch_size=2000)
        ids = dict(Patient.objects.values_list("patient_id", "pk"))
        for order in orders:
            order.patient_id = ids[order._pid]
        Order.objects.bulk_create(orders, batch_size=2000)
        order_ids = dict(Order.objects.values_list("accession_number", "pk"))
        for order, procedure in zip(orders, procedures, strict=True):
            procedure.order_id = order_ids[order.accession_number]
        RequestedProcedure.objects.bulk_create(procedures, batch_size=2000)
        rp_ids = dict(RequestedProcedure.objects.values_list("requested_procedure_id", "pk"))
        for procedure, step in zip(procedures, steps, strict=True):
            step.requested_procedure_id = rp_ids[procedure.requested_procedure_id]
        ScheduledProcedureStep.objects.bulk_create(steps, batch_size=2000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- measuring ----------------------------------------------------------------------------------


def findscu(port: int, aec: str, keys: list[str], *, count: bool = False) -> tuple[float, int]:
    """One whole findscu process; with ``count`` also the number of matches (findscu -v prints
    every response, which slows the client, so timed runs do without it)."""
    args = [tool("findscu"), "-W", "-aec", aec] + (["-v"] if count else [])
    for key in keys:
        args += ["-k", key]
    started = time.perf_counter()
    out = subprocess.run([*args, "127.0.0.1", str(port)], capture_output=True, text=True,
                         errors="replace")
    elapsed = time.perf_counter() - started
    text = out.stdout + out.stderr
    if out.returncode != 0 or (count and "Final Find Response (Success)" not in text):
        raise RuntimeError(text[-2000:])
    return elapsed, text.count("(Pending)")


def sps_keys(**keys: str) -> list[str]:
    base = ["PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID",
            "RequestedProcedureID", "RequestedProcedureDescription"]
    item = {"ScheduledStationAETitle": "", "ScheduledProcedureStepStartDate": "",
            "ScheduledProcedureStepStartTime": "", "Modality": "",
            "ScheduledProcedureStepID": "", "ScheduledProcedureStepDescription": "", **keys}
    return base + [f"ScheduledProcedureStepSequence[0].{k}={v}" for k, v in item.items()]


def queries(rng: random.Random) -> dict[str, list[str]]:
    station = rng.choice(STATIONS)
    return {
        "selective (station + day)": sps_keys(
            ScheduledStationAETitle=station, ScheduledProcedureStepStartDate=TODAY),
        "selective (station + 1 h)": sps_keys(
            ScheduledStationAETitle=station, ScheduledProcedureStepStartDate=TODAY,
            ScheduledProcedureStepStartTime="1000-1059"),
        "broad (modality + 7 days)": sps_keys(
            Modality=station[:2], ScheduledProcedureStepStartDate=WEEK),
    }


def latency(port: int, aec: str, name: str, repeat: int) -> tuple[float, float, float]:
    rng = random.Random(1)
    times, matches = [], []
    for _ in range(repeat):
        query = queries(rng)[name]
        matches.append(findscu(port, aec, query, count=True)[1])
        times.append(findscu(port, aec, query)[0] * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95, statistics.mean(matches)


def _dataset(keys: list[str]):
    from pydicom import Dataset

    ds, item = Dataset(), Dataset()
    for key in keys:
        name, _, value = key.partition("=")
        if name.startswith("ScheduledProcedureStepSequence[0]."):
            setattr(item, name.split(".", 1)[1], value)
        else:
            setattr(ds, name, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def in_association(port: int, aec: str, name: str, repeat: int) -> float:
    """Median ms of the same queries on one open association (pynetdicom SCU): the server's
    own time plus the client's decoding, without process start and association set-up."""
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    ae = AE(ae_title="BENCH")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title=aec)
    rng = random.Random(1)
    times = []
    try:
        for _ in range(repeat):
            query = _dataset(queries(rng)[name])
            started = time.perf_counter()
            for _status, _identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
                pass
            times.append((time.perf_counter() - started) * 1000)
    finally:
        assoc.release()
    return statistics.median(times)


def new_association(port: int, aec: str, name: str, repeat: int) -> float:
    """Median ms of associate + query + release from bench/rawscu.py, a new association each."""
    rng = random.Random(1)
    times = []
    for _ in range(repeat):
        request = rawscu.find_rq(_dataset(queries(rng)[name]))
        started = time.perf_counter()
        _pending, status = rawscu.query("127.0.0.1", port, aec, request)
        times.append((time.perf_counter() - started) * 1000)
        if status != 0:
            raise RuntimeError(f"final status {status:#06x}")
    return statistics.median(times)


def dcmtk_floor(repeat: int = 10) -> float:
    """Median ms of a findscu process that finds nothing listening: its start-up cost alone."""
    port = free_port()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([tool("findscu"), "-W", "127.0.0.1", str(port)], capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def throughput(port: int, aec: str, seconds: float, clients: int = 8) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def loop(i: int) -> None:
        rng = random.Random(100 + i)
        while time.monotonic() < stop:
            findscu(port, aec, queries(rng)["broad (modality + 7 days)"])
            done[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(port)


def run_size(size: int, database: str, work: Path, repeat: int, seconds: float,
             with_wlm: bool, one_at_a_time: bool = False):
    """Yield the table rows of one size as they are measured."""
    env = {**os.environ, "RIS_DATA_DIR": str(work / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if database == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{work / f'bench-{size}.sqlite3'}"
        label = "SQLite"
    else:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS ris_bench")
            conn.execute("CREATE DATABASE ris_bench")
        env["DATABASE_URL"] = database.rsplit("/", 1)[0] + "/ris_bench"
        label = "PostgreSQL"
    py = sys.executable
    subprocess.run([py, "-m", "ris.cli", "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    started = time.monotonic()
    subprocess.run([py, __file__, "--load", str(size)], env=env, check=True, cwd=ROOT)
    print(f"# {label} {size}: loaded in {time.monotonic() - started:.0f} s", file=sys.stderr)
    port = free_port()
    server = subprocess.Popen([py, "-m", "ris.cli", "dicom", "--dicom-port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, server)
        findscu(port, "RIS", ["PatientID=warmup"])
        for name in queries(random.Random(1)):
            med, p95, matches = latency(port, "RIS", name, repeat)
            fresh = new_association(port, "RIS", name, repeat)
            assoc = in_association(port, "RIS", name, repeat)
            yield (label, size, "ris", name, matches, med, p95, fresh, assoc)
        yield (label, size, "ris", "8 clients, broad", None, None, None, None, None,
               throughput(port, "RIS", seconds))
    finally:
        server.terminate()
        server.wait(timeout=20)
    if one_at_a_time:
        port = free_port()
        server = subprocess.Popen(
            [py, "-m", "ris.cli", "dicom", "--dicom-port", str(port)],
            env={**env, "RIS_MWL_DIRECT_SEND": "false"}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, server)
            findscu(port, "RIS", ["PatientID=warmup"])
            yield (label, size, "ris, one response at a time", "8 clients, broad", None, None,
                   None, None, None, throughput(port, "RIS", seconds))
        finally:
            server.terminate()
            server.wait(timeout=20)
    if with_wlm:
        folder = work / f"wl-{size}"
        if not folder.exists():
            write_worklist(folder / "WLM", spread(size))
        port = free_port()
        wlm = subprocess.Popen([tool("wlmscpfs"), "-dfp", str(folder), str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            for name in queries(random.Random(1)):
                med, p95, matches = latency(port, "WLM", name, max(5, repeat // 2))
                fresh = new_association(port, "WLM", name, max(5, repeat // 2))
                assoc = in_association(port, "WLM", name, max(5, repeat // 2))
                yield ("files", size, "wlmscpfs", name, matches, med, p95, fresh, assoc)
            yield ("files", size, "wlmscpfs", "8 clients, broad", None, None, None, None, None,
                   throughput(port, "WLM", seconds))
        finally:
            wlm.terminate()
            wlm.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--wlm-sizes", default="1000,10000")
    parser.add_argument("--database", default="sqlite", help="sqlite or a PostgreSQL URL")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="also measure throughput with RIS_MWL_DIRECT_SEND off")
    args = parser.parse_args()
    if args.load:
        load(args.load)
        return
    work = Path(tempfile.mkdtemp(prefix="ris-bench-"))
    wlm_sizes = {int(s) for s in args.wlm_sizes.split(",") if s}
    print(f"load average at start: {os.getloadavg()[0]:.1f}; findscu start-up alone (nothing "
          f"listening): {dcmtk_floor():.0f} ms median", flush=True)
    print("| database | steps | server | query | matches | findscu median ms | findscu p95 ms "
          "| new association median ms | open association median ms | q/s |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            for row in run_size(size, args.database, work, args.repeat, args.seconds,
                                size in wlm_sizes, args.one_at_a_time):
                _print_row(row)
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _print_row(row: tuple) -> None:
    label, size, server, name, matches, med, p95, fresh, assoc, *rest = row
    qps = f"{rest[0]:.1f}" if rest else ""
    m = f"{matches:.0f}" if matches is not None else ""
    md = f"{med:.0f}" if med is not None else ""
    p = f"{p95:.0f}" if p95 is not None else ""
    a = f"{assoc:.1f}" if assoc is not None else ""
    f = f"{fresh:.1f}" if fresh is not None else ""
    print(f"| {label} | {size:,} | {server} | {name} | {m} | {md} | {p} | {f} | {a} | {qps} |",
          flush=True)


if __name__ == "__main__":
    main()
