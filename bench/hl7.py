"""HL7 inbound throughput: sustained ORM^O01 NW messages per second, ACK after commit.

Runs a real ``ris serve`` with every listener up (web, dicom, mllp, scheduler) on a fresh database
(SQLite in a temp dir, or a fresh PostgreSQL database), loads a small catalogue, then sends v2.3.1
ORM^O01 NW messages over 1 and 4 MLLP connections, each sending the next message only after the
previous ACK (that is how an HIS interface engine sends). Two kinds of message, chosen with
``--kinds`` and run alternately in the same run (same server, same minutes), so their figures
compare even on a shared machine:

``lean``
    a new patient every 5th message (the other four are known and unchanged), one procedure on a
    station that allows overbooking, so no slot is checked.
``realistic``
    what a hospital feed sends for an outpatient booked from the HIS: every message a new patient
    (name, birth date, sex, address, phone, a second identifier), a new visit with a location
    (point of care, room, bed), attending and referring physicians and an admission time, an
    ordering provider and entering organisation, and one procedure whose OBR-4 is one of six
    catalogue codes, each on its own station with opening hours and no overbooking, at a start
    time that is free on that station (so every order is booked and its slot checked).

In the same run it measures the parse-only ceilings in this process (hl7apy ``parse_message`` +
hl7apy ACK, and ris's lean reader + hand-built ACK, no database), and with ``--profile`` it
applies each kind in this process (no MLLP) to say where the difference goes: SQL statements per
message, CPU per message, the cumulative time of the handler's main steps for each kind side by
side, and the top functions of each kind.

    python3 bench/hl7.py                                  # SQLite, both kinds
    python3 bench/hl7.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python3 bench/hl7.py --kinds realistic                # one kind only
    python3 bench/hl7.py --only web,mllp                  # fewer listeners (the old bench)
    python3 bench/hl7.py --profile                        # + where each kind's time goes
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, free_port, fresh_database, port_open, start_serve  # noqa: E402

VT, END = b"\x0b", b"\x1c\x0d"
KINDS = ("lean", "realistic")


@dataclass(frozen=True)
class Exam:
    """One catalogue entry of the realistic kind: HIS order code -> procedure type -> station."""

    order_code: str
    text: str
    code_value: str
    modality: str
    station: str
    minutes: int


#: Six exams on six stations, each station open 07:00-19:00 and not overbooked.
EXAMS = (
    Exam("RAD201", "CT CHEST W CONTRAST", "CTCHESTC", "CT", "CT2", 20),
    Exam("RAD202", "CT ABDOMEN PELVIS", "CTABDPEL", "CT", "CT3", 20),
    Exam("RAD301", "MR BRAIN WO CONTRAST", "MRBRAIN", "MR", "MR1", 30),
    Exam("RAD401", "US ABDOMEN COMPLETE", "USABD", "US", "US1", 15),
    Exam("RAD501", "XR CHEST 2 VIEWS", "XRCHEST2", "DX", "DX1", 10),
    Exam("RAD601", "MG SCREENING BILATERAL", "MGSCREEN", "MG", "MG1", 15),
)
OPENS, CLOSES = dt.time(7, 0), dt.time(19, 0)
FIRST_DAY = dt.date(2027, 1, 4)
FAMILY = ("Smith", "Johnson", "Garcia", "Nguyen", "Okafor", "Mueller", "Kowalski", "Haddad",
          "O'Brien", "Rossi", "Tanaka", "Fernandes")
GIVEN = ("John", "Maria", "Wei", "Aisha", "Pedro", "Anna", "Liam", "Fatima", "Yusuf", "Elena")
STREETS = ("Main St", "Oak Ave", "Elm St", "Maple Dr", "Cedar Ln", "Lakeview Rd")
CITIES = (("Springfield", "IL", "62701"), ("Peoria", "IL", "61602"), ("Decatur", "IL", "62521"))
WARDS = (("O", "RADOP"), ("O", "ORTHOCL"), ("I", "4WEST"), ("E", "ED"), ("I", "ICU2"))
DOCTORS = ("1234^Welby^Marcus^^^Dr", "5678^Kildare^James^^^Dr", "9012^Quinn^Michaela^^^Dr",
           "3456^Grey^Meredith^^^Dr", "7890^House^Gregory^^^Dr")
SERVICES = ("CARDIO^Cardiology", "ORTHO^Orthopaedics", "ONC^Oncology", "EMERG^Emergency")


def slots_per_day(exam: Exam) -> int:
    return (CLOSES.hour - OPENS.hour) * 60 // exam.minutes


def days_needed(count: int) -> int:
    """Days of the realistic schedule ``count`` messages fill (a run starts on a fresh day)."""
    per_exam = -(-count // len(EXAMS))
    return max(-(-per_exam // slots_per_day(exam)) for exam in EXAMS) + 1


def lean_message(i: int, run: str) -> bytes:
    patient = i // 5
    day = 1 + (i // 400) % 28
    hour, minute = 7 + (i // 40) % 12, (i % 4) * 15
    segments = [
        f"MSH|^~\\&|EPIC|CITYHOSP|RIS|RAD|20261130083000||ORM^O01|{run}-{i:07d}|P|2.3.1",
        f"PID|1||MRN{run}{patient:07d}^^^CITYHOSP^MR~{patient:09d}^^^SSA^SS||Smith{patient}^John^Q"
        f"||19650412|M|||12 Main St^^Springfield^IL^62701||(217)555-0101",
        "PV1|1|O|RAD^101^A^CITYHOSP||||1234^Welby^Marcus^^^Dr|5678^Kildare^James"
        f"|||||||||||V{run}{patient:07d}",
        f"ORC|NW|ORD{run}{i:07d}^EPIC|||||^^^202612{day:02d}{hour:02d}{minute:02d}^^R"
        "||202611300830|||1234^Welby^Marcus^^^Dr|||||CARDIO^Cardiology",
        f"OBR|1|ORD{run}{i:07d}^EPIC||RAD001^CT HEAD WO CONTRAST^HISCODE|||202611300830"
        "|||||||||1234^Welby^Marcus^^^Dr||||||||CT|||||||^Headache for three weeks",
    ]
    return ("\r".join(segments) + "\r").encode()


def realistic_message(i: int, run: str, first_day: int) -> bytes:
    """A new patient, a new visit and one order booked in a free slot of its exam's station.

    The i-th message of a run takes the next free slot of exam ``i % 6``; a run starts on day
    ``first_day`` after FIRST_DAY, so the runs of one server never book the same slot.
    """
    exam = EXAMS[i % len(EXAMS)]
    nth = i // len(EXAMS)
    per_day = slots_per_day(exam)
    day = FIRST_DAY + dt.timedelta(days=first_day + nth // per_day)
    start = dt.datetime.combine(day, OPENS) + dt.timedelta(minutes=(nth % per_day) * exam.minutes)
    family, given = FAMILY[i % len(FAMILY)], GIVEN[(i // 3) % len(GIVEN)]
    city, state, zip_code = CITIES[i % len(CITIES)]
    patient_class, ward = WARDS[i % len(WARDS)]
    attending, referring = DOCTORS[i % len(DOCTORS)], DOCTORS[(i + 2) % len(DOCTORS)]
    orderer = DOCTORS[(i + 1) % len(DOCTORS)]
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=(i * 37) % 30000)
    mrn = f"M{run}{i:07d}"
    pv1 = [""] * 45
    pv1[0:4] = ["PV1", "1", patient_class, f"{ward}^{100 + i % 40}^{'AB'[i % 2]}^CITYHOSP"]
    pv1[7], pv1[8], pv1[10] = attending, referring, "RAD"
    pv1[18], pv1[19] = "SP", f"V{run}{i:07d}^^^CITYHOSP^VN"
    pv1[44] = f"{start - dt.timedelta(hours=2):%Y%m%d%H%M}"
    segments = [
        f"MSH|^~\\&|EPIC|CITYHOSP|RIS|RAD|20261130083000||ORM^O01|{run}-{i:07d}|P|2.3.1",
        f"PID|1||{mrn}^^^CITYHOSP^MR~{900000000 + i}^^^SSA^SS||{family}{i}^{given}^{'ABCDE'[i % 5]}"
        f"^^^^L||{birth:%Y%m%d}|{'MF'[i % 2]}|||{10 + i % 990} {STREETS[i % len(STREETS)]}"
        f"^Apt {i % 30}^{city}^{state}^{zip_code}^USA^H||(217)555-{i % 10000:04d}^PRN^PH"
        f"|||{'MSW'[i % 3]}||A{run}{i:07d}",
        "|".join(pv1),
        f"ORC|NW|P{run}{i:07d}^EPIC|||||^^^{start:%Y%m%d%H%M}^^R||202611300830|||{orderer}"
        f"|||||{SERVICES[i % len(SERVICES)]}",
        f"OBR|1|P{run}{i:07d}^EPIC||{exam.order_code}^{exam.text}^HISCODE|||202611300830"
        f"|||||||||{orderer}||||||||{exam.modality}|||||||^Follow-up of finding {i % 97}",
    ]
    return ("\r".join(segments) + "\r").encode()


def messages_of(kind: str, count: int, run: str, first_day: int) -> list[bytes]:
    if kind == "lean":
        return [lean_message(i, run) for i in range(count)]
    return [realistic_message(i, run, first_day) for i in range(count)]


def parse_ceilings(count: int) -> dict[str, tuple[float, float]]:
    """name -> (messages/s, CPU ms per message) of parsing and ACK building alone."""
    from hl7apy.core import Message as ApyMessage
    from hl7apy.parser import parse_message

    from ris.hl7 import er7
    from ris.hl7.ack import build_ack

    messages = messages_of("lean", count, "P", 0)
    started, cpu = time.perf_counter(), time.process_time()
    for raw in messages:
        parsed = parse_message(raw.decode().replace("\n", "\r"), find_groups=False)
        ack = ApyMessage("ACK", version="2.3.1")
        ack.msh.msh_3, ack.msh.msh_5 = "RIS", parsed.msh.msh_3.value
        ack.msa.msa_1, ack.msa.msa_2 = "AA", parsed.msh.msh_10.value
        ack.to_er7()
    hl7apy = (count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e3)
    started, cpu = time.perf_counter(), time.process_time()
    for raw in messages:
        header = er7.read_header(raw)
        parsed = er7.parse(raw.decode("ascii"), "ascii")
        pid, orc, obr = parsed.first("PID"), parsed.first("ORC"), parsed.first("OBR")
        _ = (pid.get(3), pid.components(5), orc.get(2), orc.get(7, 4), obr.get(4), obr.get(31, 2))
        build_ack(header, "AA")
    lean = (count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e3)
    return {"hl7apy parse + hl7apy ACK": hl7apy, "lean er7 parse + ACK": lean}


def load_catalogue() -> None:
    from worklist.models import Device, ProcedureOrderCode, ProcedureType

    ct1 = Device.objects.create(ae_title="CT1", modality="CT", allow_overbooking=True)
    ptype = ProcedureType.objects.create(
        code_value="CTHEAD", code_meaning="CT Head without contrast", modality="CT"
    )
    ptype.stations.add(ct1)
    ProcedureOrderCode.objects.create(code="RAD001", coding_system="HISCODE", procedure_type=ptype)
    for exam in EXAMS:
        station = Device.objects.create(
            ae_title=exam.station, modality=exam.modality, station_name=exam.station,
            location=f"RAD-{exam.station}", opens_at=OPENS, closes_at=CLOSES,
        )
        ptype = ProcedureType.objects.create(
            code_value=exam.code_value, code_meaning=exam.text.title()[:64],
            modality=exam.modality, default_duration_minutes=exam.minutes,
            protocol_codes=[{"value": exam.code_value, "scheme": "L", "meaning": exam.text}],
        )
        ptype.stations.add(station)
        ProcedureOrderCode.objects.create(
            code=exam.order_code, coding_system="HISCODE", procedure_type=ptype
        )


def send_stream(port: int, messages: list[bytes], latencies: list[float]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for raw in messages:
            started = time.perf_counter()
            sock.sendall(VT + raw + END)
            reply = b""
            while END not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit("connection closed by ris")
                reply += chunk
            if b"MSA|AA|" not in reply:
                raise SystemExit(f"not an AA: {reply[:300]!r}")
            latencies.append(time.perf_counter() - started)


def process_tree(pid: int) -> list[int]:
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found += process_tree(int(stat.parent.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (the server's CPU, whatever else loads the machine)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def listener_pids(pids: list[int], name: str) -> list[int]:
    """The processes of ``pids`` whose command line is ``... ris.cli <name>``."""
    found = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ris.cli" in argv and name.encode() in argv:
            found.append(pid)
    return found


def throughput(port: int, connections: int, messages: list[bytes]) -> tuple[float, float]:
    """(messages/s, median latency ms) of ``messages`` shared over ``connections`` streams."""
    share = [messages[i::connections] for i in range(connections)]
    latencies: list[float] = []
    threads = [
        threading.Thread(target=send_stream, args=(port, part, latencies)) for part in share
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return len(messages) / elapsed, statistics.median(latencies) * 1000


#: The handler's main steps, as (module path suffix, function): the profile's cumulative time of
#: each, per message and per kind, says which of them the realistic messages make dearer.
STEPS = (
    ("ris/hl7/handler.py", "handle", "whole handler"),
    ("ris/hl7/handler.py", "_original", "resend look-up"),
    ("ris/hl7/handler.py", "decode_and_parse", "decode + ER7 parse"),
    ("ris/hl7/mapping.py", "_upsert_patient", "patient (look-up + insert/update)"),
    ("worklist/services.py", "patient_upsert", "  services.patient_upsert (new)"),
    ("worklist/services.py", "patient_update", "  services.patient_update (known)"),
    ("ris/hl7/mapping.py", "_visit", "visit (PV1)"),
    ("worklist/services.py", "visit_upsert", "  services.visit_upsert"),
    ("ris/hl7/mapping.py", "_create_order", "order (mapping + order_create)"),
    ("ris/hl7/mapping.py", "catalogue_entry", "  OBR-4 catalogue look-up"),
    ("worklist/services.py", "order_create", "  services.order_create"),
    ("worklist/identifiers.py", "for_order", "    identifiers"),
    ("worklist/services.py", "_place", "    slot check (_place)"),
    ("worklist/audit.py", "record_all", "    audit rows"),
    ("ris/hl7/handler.py", "_store", "message store"),
    ("django/db/backends/base/base.py", "commit", "COMMIT"),
    ("django/db/backends/utils.py", "execute", "all SQL (cursor execute)"),
)


def _cumulative_ms(stats, suffix: str, name: str, count: int) -> float:
    total = 0.0
    for (filename, _line, function), (_cc, _nc, _tt, ct, callers) in stats.stats.items():
        if function == name and filename.endswith(suffix):
            # recursive or nested calls of the same function: count the outermost only
            outer = {k: v for k, v in callers.items() if k[2] != name}
            total += sum(v[3] for v in outer.values()) if outer else ct
    return total / count * 1000


def statement_counts(handle, messages: list[bytes]) -> dict[str, float]:
    """SQL statements per message, by their first word, over ``messages``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts: dict[str, int] = {}
    with CaptureQueriesContext(connection) as captured:
        for raw in messages:
            handle(raw, "bench")
    for query in captured.captured_queries:
        word = query["sql"].split(None, 1)[0].upper()
        counts[word] = counts.get(word, 0) + 1
    return {word: n / len(messages) for word, n in sorted(counts.items())}


def slot_check_cost(station: str = EXAMS[4].station, repeat: int = 50) -> None:
    """The slot check of a booking, as ``worklist.services`` runs it, before and after a station's
    existing steps: whether its cost grows with the station's schedule."""
    from worklist.models import ScheduledProcedureStep
    from worklist.states import SLOT_OCCUPYING_STEP_STATUSES

    steps = ScheduledProcedureStep.objects.filter(station__ae_title=station)
    count = steps.count()
    if not count:
        return
    first = steps.order_by("scheduled_start").values_list("scheduled_start", flat=True)[0]
    last = steps.order_by("-scheduled_start").values_list("scheduled_end", flat=True)[0]
    station_id = steps.values_list("station_id", flat=True)[0]
    print(f"\n  slot check (one SELECT per booked step) on {station}, {count} steps booked there:")
    for label, start in (("before its first step", first - dt.timedelta(hours=1)),
                         ("after its last step", last + dt.timedelta(hours=1))):
        end = start + dt.timedelta(minutes=10)
        started = time.perf_counter()
        for _ in range(repeat):
            ScheduledProcedureStep.objects.filter(
                station_id=station_id, status__in=SLOT_OCCUPYING_STEP_STATUSES,
                scheduled_start__lt=end, scheduled_end__gt=start,
            ).exclude(pk=None).order_by("scheduled_start").first()
        print(f"    a new step {label:<22} {(time.perf_counter() - started) / repeat * 1e3:.2f} ms")


def profile_kinds(kinds: list[str], count: int, first_day: int, top: int) -> None:
    """Apply ``count`` messages of each kind in this process and print where the time goes."""
    import cProfile
    import io
    import pstats

    from ris.hl7 import handler

    day = first_day
    batches = {}
    for kind in kinds:
        batches[kind] = [
            messages_of(kind, count, f"Q{kind[0].upper()}{n}", day + n * days_needed(count))
            for n in range(3)
        ]
        day += 3 * days_needed(count)
    print(f"\nin process (no MLLP), {count} messages of each kind, load average "
          f"{os.getloadavg()[0]:.1f}:")
    for kind in kinds:
        per = statement_counts(handler.handle, batches[kind][0][: min(count, 50)])
        print(f"  {kind:<10} SQL statements per message: {sum(per.values()):.1f}  "
              + "  ".join(f"{word} {n:.1f}" for word, n in per.items()))
    for kind in kinds:  # CPU without the profiler's overhead
        started, cpu = time.perf_counter(), time.process_time()
        for raw in batches[kind][1]:
            handler.handle(raw, "bench")
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"  {kind:<10} {count / wall:6.0f} msg/s in process   CPU {cpu / count * 1e3:.2f} "
              f"ms/msg   load average {os.getloadavg()[0]:.1f}")
    profilers, stats_of = {}, {}
    for kind in kinds:
        profiler = cProfile.Profile()
        profiler.enable()
        for raw in batches[kind][2]:
            handler.handle(raw, "bench")
        profiler.disable()
        profilers[kind], stats_of[kind] = profiler, pstats.Stats(profiler)
    print("\n  cumulative ms per message under cProfile (inflated by the profiler; compare "
          "the kinds):")
    print(f"  {'step':<40}" + "".join(f"{kind:>11}{'share':>7}" for kind in kinds)
          + ("   difference  share" if len(kinds) == 2 else ""))
    whole = [_cumulative_ms(stats_of[kind], *STEPS[0][:2], count) for kind in kinds]
    for suffix, name, label in STEPS:
        values = [_cumulative_ms(stats_of[kind], suffix, name, count) for kind in kinds]
        line = f"  {label:<40}" + "".join(
            f"{v:11.2f}{v / w:7.0%}" for v, w in zip(values, whole, strict=True)
        )
        if len(kinds) == 2:
            gap = whole[1] - whole[0]
            line += f"   {values[1] - values[0]:+10.2f}{(values[1] - values[0]) / gap:7.0%}"
        print(line)
    if "realistic" in kinds:
        slot_check_cost()
    for kind in kinds:
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profilers[kind], stream=out).sort_stats(order).print_stats(top)
            body = out.getvalue()
            body = body[body.find("   ncalls"):]
            print(f"\n  {kind}: top {top} functions by {order} ({count} messages)\n{body}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--messages", type=int, default=1000, help="per kind, run and round")
    parser.add_argument("--connections", default="1,4")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"comma-separated message kinds to send ({', '.join(KINDS)})")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternations of the kinds per connection count")
    parser.add_argument("--only", default="web,dicom,mllp,scheduler",
                        help="listeners of ris serve (default: all)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-messages", type=int, default=300)
    args = parser.parse_args()
    kinds = [kind for kind in args.kinds.split(",") if kind]
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--kinds takes {', '.join(KINDS)}")

    url, data_dir = fresh_database(args.database_url, "hl7")
    mllp_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "RIS_DATA_DIR": data_dir,
            "RIS_HTTP": f"127.0.0.1:{free_port()}",
            "RIS_DICOM_PORT": str(free_port()),
            "RIS_MLLP_PORT": str(mllp_port),
            "RIS_MLLP_HOST": "127.0.0.1",
            "RIS_ADMIN_PASSWORD": "bench-admin-password",
            "RIS_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "ris.settings",
        }
    )
    os.environ.update(env)
    import django

    django.setup()
    process = start_serve(env, args.only, port_open(mllp_port), "open its MLLP port")
    try:
        load_catalogue()
        from django.db import connection

        vendor = connection.vendor
        connection.close()
        ceilings = parse_ceilings(300)
        day = 0
        for kind in kinds:  # warm-up: both code paths, catalogue cached
            throughput(mllp_port, 1, messages_of(kind, 100, f"W{kind[0].upper()}", day))
            day += days_needed(100)
        server = process_tree(process.pid)
        mllp = listener_pids(server, "mllp")  # its own CPU, without the other listeners'
        rows = []
        for connections in [int(c) for c in args.connections.split(",")]:
            for round_ in range(args.rounds):
                for kind in kinds:
                    run = f"C{connections}{kind[0].upper()}{round_}"
                    messages = messages_of(kind, args.messages, run, day)
                    day += days_needed(args.messages)
                    load_before = os.getloadavg()[0]
                    before, before_mllp = cpu_seconds(server), cpu_seconds(mllp)
                    rate, median_ms = throughput(mllp_port, connections, messages)
                    cpu_ms = (cpu_seconds(server) - before) / args.messages * 1000
                    mllp_ms = (cpu_seconds(mllp) - before_mllp) / args.messages * 1000
                    rows.append((connections, kind, rate, median_ms, cpu_ms, mllp_ms,
                                 load_before, os.getloadavg()[0]))
        print(
            f"database: {vendor}; ris serve --only {args.only}; {args.messages} ORM^O01 NW per "
            f"kind and run, kinds alternated {args.rounds}x; ACK after COMMIT; "
            f"{os.cpu_count()} cores"
        )
        for name, (rate, cpu_ms) in ceilings.items():
            print(
                f"  parse-only ceiling, {name:<26} {rate:8.0f} msg/s   CPU {cpu_ms:.2f} ms/msg "
                "(one core, no database)"
            )
        print("  (server CPU: every process of ris serve; mllp: the HL7 listener alone)")
        for connections, kind, rate, median_ms, cpu_ms, mllp_ms, load0, load1 in rows:
            print(
                f"  {connections} connection(s), {kind:<10} {rate:6.0f} msg/s   median round trip "
                f"{median_ms:6.2f} ms   server CPU {cpu_ms:5.2f} ms/msg (mllp {mllp_ms:5.2f})   "
                f"load average {load0:.1f} -> {load1:.1f}"
            )
        for connections in sorted({row[0] for row in rows}):
            summary = []
            for kind in kinds:
                rates = [row[2] for row in rows if row[0] == connections and row[1] == kind]
                cpus = [row[5] for row in rows if row[0] == connections and row[1] == kind]
                summary.append(f"{kind} {statistics.median(rates):.0f} msg/s "
                               f"(mllp CPU {statistics.median(cpus):.2f} ms/msg)")
            print(f"  median over rounds, {connections} connection(s): " + ", ".join(summary))
        if args.profile:
            profile_kinds(kinds, args.profile_messages, day, 20)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
