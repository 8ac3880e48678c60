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
from tests.mwl.wlfiles import STATIONS, Spread, item_values, write_worklist  # noqa: E402

FIRST_DAY = dt.date(2030, 3, 1)
TODAY = "20300320"
WEEK = "20300320-20300326"


def spread(size: int) -> Spread:
    return Spread(size, FIRST_DAY, days=60, seed=7)


# --- loading (runs inside Django) ---------------------------------------------------------------


def load(size: int) -> None:
    """Bulk-load the generated items straight into the tables, as plain INSERTs of prepared
    values in large batches (services would take ~40 ms per item on this machine, Django's
    bulk_create and pydicom ~10 ms: a million steps need neither; the import path is measured
    by tests, not here). Primary keys are given, so nothing is read back."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from worklist.dicom import department_zone
    from worklist.models import (
        Device,
        Order,
        Patient,
        RequestedProcedure,
        ScheduledProcedureStep,
    )
    from worklist.pn import PersonName

    zone = department_zone()
    devices = {s: Device.objects.get_or_create(ae_title=s, defaults={
        "modality": s[:2], "station_name": s})[0].pk for s in STATIONS}
    ops = connection.ops
    now = timezone.now()
    rng = random.Random(spread(size).seed)
    tables = {
        Patient: _Table(Patient, ["id", "patient_id", "issuer", "sex", "birth_date",
                                  "name_alphabetic", "name_ideographic", "name_phonetic",
                                  "family_name", "given_name"], now),
        Order: _Table(Order, ["id", "patient_id", "accession_number", "source",
                              "referring_physician", "requesting_physician", "priority"], now),
        RequestedProcedure: _Table(RequestedProcedure, [
            "id", "order_id", "requested_procedure_id", "study_instance_uid", "description",
            "code_value", "code_scheme", "code_meaning", "priority"], now),
        ScheduledProcedureStep: _Table(ScheduledProcedureStep, [
            "id", "requested_procedure_id", "sps_id", "station_id", "modality",
            "scheduled_start", "scheduled_end", "performing_physician", "description",
            "protocol_codes", "location", "status"], now),
    }
    protocol_json: dict[str, object] = {}
    patients: dict[str, int] = {}
    quarter = dt.timedelta(minutes=15)
    with transaction.atomic():
        for n in range(1, size + 1):
            v = item_values(n, rng, spread(size))
            pid = v["patient_id"]
            patient_pk = patients.get(pid)
            if patient_pk is None:
                patient_pk = patients[pid] = len(patients) + 1
                name = PersonName.parse(v["name"])
                first = (name.alphabetic or name.ideographic or name.phonetic).split("^")
                birth = dt.date(int(v["birth"][:4]), int(v["birth"][4:6]), int(v["birth"][6:]))
                tables[Patient].add((
                    patient_pk, pid, "HOSP", v["sex"], ops.adapt_datefield_value(birth),
                    name.alphabetic, name.ideographic, name.phonetic, first[0][:100],
                    (first[1] if len(first) > 1 else "")[:100]))
            tables[Order].add((n, patient_pk, v["accession"], "IMPORT", v["referring"],
                               v["requesting"], v["priority"]))
            tables[RequestedProcedure].add((n, n, v["rp_id"], v["study_uid"], v["meaning"],
                                            v["code"], "L", v["meaning"], v["priority"]))
            start = v["start"].replace(tzinfo=zone)
            code = v["code"]
            if code not in protocol_json:
                field = ScheduledProcedureStep._meta.get_field("protocol_codes")
                protocol_json[code] = field.get_db_prep_save(
                    [{"value": f"{code}-P", "scheme": "L",
                      "meaning": f"{v['meaning']} protocol"}], connection)
            tables[ScheduledProcedureStep].add((
                n, n, v["sps_id"], devices[v["station"]], v["modality"],
                ops.adapt_datetimefield_value(start),
                ops.adapt_datetimefield_value(start + quarter), v["performing"], v["meaning"],
                protocol_json[code], f"Room {v['station']}", "SCHEDULED"))
        for table in tables.values():
            table.flush()
    with connection.cursor() as cursor:
        for sql in ops.sequence_reset_sql(_no_style(), list(tables)):
            cursor.execute(sql)
        cursor.execute("ANALYZE")


def _no_style():
    from django.core.management.color import no_style

    return no_style()


class _Table:
    """INSERTs of one model's rows in batches: the given columns per row, every other concrete
    column its field's default, prepared for the database once."""

    BATCH = 5000

    def __init__(self, model, columns: list[str], now: dt.datetime) -> None:
        from django.db import connection

        self.connection = connection
        fields = {f.column: f for f in model._meta.concrete_fields}
        fixed = {}
        for column, field in fields.items():
            if column in columns:
                continue
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                value = now
            elif field.has_default():
                value = field.get_default()
            elif field.null:
                value = None
            else:
                value = field.get_default()  # "" for a blank text field
            fixed[column] = field.get_db_prep_save(value, connection)
        self.tail = tuple(fixed.values())
        names = [*columns, *fixed]
        quote = connection.ops.quote_name
        self.sql = (f"INSERT INTO {quote(model._meta.db_table)} "
                    f"({', '.join(quote(c) for c in names)}) "
                    f"VALUES ({', '.join(['%s'] * len(names))})")
        self.rows: list[tuple] = []

    def add(self, values: tuple) -> None:
        self.rows.append(values + self.tail)
        if len(self.rows) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            with self.connection.cursor() as cursor:
                cursor.executemany(self.sql, self.rows)
            self.rows.clear()


# --- measuring ----------------------------------------------------------------------------------


def handler_cpu(repeat: int) -> None:
    """The handler's own work for each query, in this process, without a socket: the rows read
    and every response encoded, as the code without the cache does it (``worklist_rows``, the
    ORM's converters, ``ResponseBuilder.encode``) and with it (the columns of the requested keys
    on a cursor, the cache warm). CPU time, alternated, medians: on a loaded shared machine the
    wall clock of a whole association measures the machine, this measures the code."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ris.settings")
    django.setup()
    from worklist.dicom import ResponseBuilder
    from worklist.matching import worklist_query
    from worklist.mwl.response_cache import ResponseCache
    from worklist.selectors import worklist_raw_rows, worklist_rows

    cache = ResponseCache(1_000_000)
    for name in queries(random.Random(1)):
        rng = random.Random(1)
        for _ in range(repeat):  # the same queries once, to fill the cache (a warm listener)
            identifier = _dataset(queries(rng)[name])
            builder = ResponseBuilder(identifier)
            raw = worklist_raw_rows(worklist_query(identifier), columns=builder.columns)
            encode = cache.encoder(builder, raw, implicit_vr=True, little_endian=True)
            for values in raw.raw:
                encode(values)
        rng = random.Random(1)
        cpu: dict[str, list[float]] = {"off": [], "on": []}
        matches = 0
        for _ in range(repeat):
            identifier = _dataset(queries(rng)[name])
            builder = ResponseBuilder(identifier)
            started = time.process_time()
            rows = list(worklist_rows(worklist_query(identifier)))
            off = [builder.encode(r, implicit_vr=True, little_endian=True) for r in rows]
            middle = time.process_time()
            raw = worklist_raw_rows(worklist_query(identifier), columns=builder.columns)
            encode = cache.encoder(builder, raw, implicit_vr=True, little_endian=True)
            on = [encode(values) for values in raw.raw]
            ended = time.process_time()
            if on != off:
                raise AssertionError(f"{name}: cached responses differ")
            cpu["off"].append((middle - started) * 1000)
            cpu["on"].append((ended - middle) * 1000)
            matches = len(rows)
        off_ms, on_ms = statistics.median(cpu["off"]), statistics.median(cpu["on"])
        print(f"{name}\t{matches}\t{off_ms:.1f}\t{on_ms:.1f}", flush=True)


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc): what a query costs the server whatever
    else the machine is doing, unlike its wall-clock latency on a shared, loaded machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def new_association_ab(port_a: int, port_b: int, aec: str, name: str, repeat: int,
                       pids: tuple[int, int]) -> tuple[float, float, float, float]:
    """``new_association`` on two servers, one query on A then the same on B, ``repeat`` times:
    the medians of both, measured in the same seconds, and each server's CPU ms per query."""
    rng = random.Random(1)
    times: dict[int, list[float]] = {port_a: [], port_b: []}
    cpu = {port_a: 0.0, port_b: 0.0}
    for _ in range(repeat):
        request = rawscu.find_rq(_dataset(queries(rng)[name]))
        for port, pid in zip((port_a, port_b), pids, strict=True):
            before = cpu_seconds(pid)
            started = time.perf_counter()
            _pending, status = rawscu.query("127.0.0.1", port, aec, request)
            times[port].append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)  # the server's audit row and association clean-up, counted too
            cpu[port] += cpu_seconds(pid) - before
            if status != 0:
                raise RuntimeError(f"final status {status:#06x}")
    return (statistics.median(times[port_a]), statistics.median(times[port_b]),
            cpu[port_a] * 1000 / repeat, cpu[port_b] * 1000 / repeat)


def dcmtk_floor(repeat: int = 10) -> float:
    """Median ms of a findscu process that finds nothing listening: its start-up cost alone."""
    port = free_port()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([tool("findscu"), "-W", "127.0.0.1", str(port)], capture_output=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def throughput(port: int, aec: str, seconds: float, clients: int = 8, raw: bool = False) -> float:
    """Queries/s of ``clients`` loops of the broad query: whole findscu processes (what
    modalities cost the machine too), or with ``raw`` bench/rawscu.py in threads of this process
    (a client that barely costs anything: findscu reading 2,300 responses costs more CPU than
    ris answering them, and on 2 cores 8 of them measure themselves)."""
    done = [0] * clients
    stop = time.monotonic() + seconds
    request = rawscu.find_rq(_dataset(queries(random.Random(1))["broad (modality + 7 days)"]))

    def loop(i: int) -> None:
        rng = random.Random(100 + i)
        while time.monotonic() < stop:
            if raw:
                rawscu.query("127.0.0.1", port, aec, request)
            else:
                findscu(port, aec, queries(rng)["broad (modality + 7 days)"])
            done[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def _throughput_and_cpu(port: int, pids: list[int], seconds: float,
                        raw: bool = False) -> tuple[float, float]:
    """Queries/s of 8 client loops, and the server's CPU ms per query meanwhile (all of its
    processes)."""
    before, started = sum(cpu_seconds(pid) for pid in pids), time.monotonic()
    qps = throughput(port, "RIS", seconds, raw=raw)
    queries_done = qps * (time.monotonic() - started)
    return qps, (sum(cpu_seconds(pid) for pid in pids) - before) * 1000 / max(queries_done, 1)


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
             with_wlm: bool, one_at_a_time: bool = False, uncached: bool = False,
             quick: bool = False, keep: bool = False, processes: int = 1):
    """Yield the table rows of one size as they are measured."""
    env = {**os.environ, "RIS_DATA_DIR": str(work / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    reuse = False
    if database == "sqlite":
        path = work / f"bench-{size}.sqlite3"
        reuse = keep and path.exists()
        env["DATABASE_URL"] = f"sqlite:///{path}"
        label = "SQLite"
    else:
        import psycopg

        name = f"ris_bench_{size}" if keep else "ris_bench"
        with psycopg.connect(database, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()
            reuse = keep and exists is not None
            if not reuse:
                conn.execute(f"DROP DATABASE IF EXISTS {name}")
                conn.execute(f"CREATE DATABASE {name}")
        env["DATABASE_URL"] = database.rsplit("/", 1)[0] + "/" + name
        label = "PostgreSQL"
    py = sys.executable
    subprocess.run([py, "-m", "ris.cli", "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    if reuse:
        print(f"# {label} {size}: the database kept from an earlier run", file=sys.stderr)
    else:
        started = time.monotonic()
        subprocess.run([py, __file__, "--load", str(size)], env=env, check=True, cwd=ROOT)
        print(f"# {label} {size}: loaded in {time.monotonic() - started:.0f} s",
              file=sys.stderr, flush=True)
    port = free_port()
    server = subprocess.Popen([py, "-m", "ris.cli", "dicom", "--dicom-port", str(port)], env=env,
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The same code with the response cache off (RIS_MWL_RESPONSE_CACHE_ITEMS=0), on the same
    # database at the same time: each query alternates between the two servers.
    other = other_port = None
    if uncached:
        other_port = free_port()
        other = subprocess.Popen(
            [py, "-m", "ris.cli", "dicom", "--dicom-port", str(other_port)],
            env={**env, "RIS_MWL_RESPONSE_CACHE_ITEMS": "0"}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, server)
        findscu(port, "RIS", ["PatientID=warmup"])
        if other is not None:
            wait_port(other_port, other)
            findscu(other_port, "RIS", ["PatientID=warmup"])
        load_before = os.getloadavg()[0]
        for name in queries(random.Random(1)):
            if not quick:
                med, p95, matches = latency(port, "RIS", name, repeat)
            else:  # the same queries once, as the findscu latencies would have: a warm cache
                med = p95 = None
                request = rawscu.find_rq(_dataset(queries(random.Random(1))[name]))
                matches = rawscu.query("127.0.0.1", port, "RIS", request)[0]
                new_association(port, "RIS", name, repeat)
            cpu = cpu_off = None
            if other is not None:
                fresh, fresh_off, cpu, cpu_off = new_association_ab(
                    port, other_port, "RIS", name, repeat, (server.pid, other.pid))
            else:
                fresh, fresh_off = new_association(port, "RIS", name, repeat), None
            assoc = None if quick else in_association(port, "RIS", name, repeat)
            yield (label, size, "ris", name, matches, med, p95, fresh, assoc, None, cpu)
            if fresh_off is not None:
                yield (label, size, "ris, cache off", name, matches, None, None, fresh_off, None,
                       None, cpu_off)
        yield (label, size, "ris", "8 clients, broad", None, None, None, None, None,
               *_throughput_and_cpu(port, [server.pid], seconds))
        yield (label, size, "ris", "8 light clients, broad", None, None, None, None, None,
               *_throughput_and_cpu(port, [server.pid], seconds, raw=True))
        if other is not None:
            yield (label, size, "ris, cache off", "8 clients, broad", None, None, None, None,
                   None, *_throughput_and_cpu(other_port, [other.pid], seconds))
        print(f"# {label} {size}: load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}",
              file=sys.stderr, flush=True)
        # The handler's CPU per query without the network, cache off and on (handler_cpu).
        out = subprocess.run([py, __file__, "--handler-cpu", str(max(5, repeat // 2))], env=env,
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            name, matches, off_ms, on_ms = line.split("\t")
            print(f"# {label} {size}: handler CPU, {name} ({matches} matches): cache off "
                  f"{off_ms} ms, on {on_ms} ms ({float(off_ms) / max(float(on_ms), 0.01):.1f}x)",
                  flush=True)
    finally:
        for proc in (server, other):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=20)
    if processes > 1:
        # RIS_DICOM_PROCESSES: several `ris dicom` on one port (SO_REUSEPORT), as `ris serve`
        # starts them; the CPU per query is that of all of them.
        port = free_port()
        group = [subprocess.Popen(
            [py, "-m", "ris.cli", "dicom", "--dicom-port", str(port)],
            env={**env, "RIS_DICOM_PROCESSES": str(processes)}, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(processes)]
        try:
            for proc in group:
                wait_port(port, proc)
            for _ in range(4 * processes):  # each process's cache warmed (the kernel spreads)
                findscu(port, "RIS", queries(random.Random(1))["broad (modality + 7 days)"])
            pids = [proc.pid for proc in group]
            yield (label, size, f"ris, {processes} processes", "8 clients, broad", None, None,
                   None, None, None, *_throughput_and_cpu(port, pids, seconds))
            yield (label, size, f"ris, {processes} processes", "8 light clients, broad", None,
                   None, None, None, None, *_throughput_and_cpu(port, pids, seconds, raw=True))
        finally:
            for proc in group:
                proc.terminate()
                proc.wait(timeout=20)
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
            yield ("files", size, "wlmscpfs", "8 light clients, broad", None, None, None, None,
                   None, throughput(port, "WLM", seconds, raw=True))
        finally:
            wlm.terminate()
            wlm.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--handler-cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--wlm-sizes", default="1000,10000")
    parser.add_argument("--database", default="sqlite", help="sqlite or a PostgreSQL URL")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--one-at-a-time", action="store_true",
                        help="also measure throughput with RIS_MWL_DIRECT_SEND off")
    parser.add_argument("--uncached", action="store_true",
                        help="also run a server with the response cache off, side by side")
    parser.add_argument("--quick", action="store_true",
                        help="only the new-association latency and 8 clients (no findscu "
                             "latency, no open association): for the largest sizes")
    parser.add_argument("--dicom-processes", type=int, default=1,
                        help="also measure 8 clients against this many `ris dicom` processes "
                             "on one port (RIS_DICOM_PROCESSES)")
    parser.add_argument("--keep", type=Path,
                        help="keep the generated databases in this directory (SQLite)")
    args = parser.parse_args()
    if args.load:
        load(args.load)
        return
    if args.handler_cpu:
        handler_cpu(args.handler_cpu)
        return
    work = args.keep or Path(tempfile.mkdtemp(prefix="ris-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    wlm_sizes = {int(s) for s in args.wlm_sizes.split(",") if s}
    print(f"load average at start: {os.getloadavg()[0]:.1f}; findscu start-up alone (nothing "
          f"listening): {dcmtk_floor():.0f} ms median", flush=True)
    print("| database | steps | server | query | matches | findscu median ms | findscu p95 ms "
          "| new association median ms | open association median ms | q/s "
          "| server CPU ms per query |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            for row in run_size(size, args.database, work, args.repeat, args.seconds,
                                size in wlm_sizes, args.one_at_a_time, args.uncached,
                                args.quick, args.keep is not None,
                                args.dicom_processes):
                _print_row(row)
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _print_row(row: tuple) -> None:
    label, size, server, name, matches, med, p95, fresh, assoc, *rest = row
    qps = f"{rest[0]:.1f}" if rest and rest[0] is not None else ""
    cpu = f"{rest[1]:.1f}" if len(rest) > 1 and rest[1] is not None else ""
    m = f"{matches:.0f}" if matches is not None else ""
    md = f"{med:.0f}" if med is not None else ""
    p = f"{p95:.0f}" if p95 is not None else ""
    a = f"{assoc:.1f}" if assoc is not None else ""
    f = f"{fresh:.1f}" if fresh is not None else ""
    print(f"| {label} | {size:,} | {server} | {name} | {m} | {md} | {p} | {f} | {a} | {qps} "
          f"| {cpu} |", flush=True)


if __name__ == "__main__":
    main()
