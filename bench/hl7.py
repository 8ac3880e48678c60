"""HL7 inbound throughput: sustained ORM^O01 NW messages per second, ACK after commit.

Runs a real ``ris serve --only web,mllp`` on a fresh database (SQLite in a temp dir, or a fresh
PostgreSQL database), loads a small catalogue, then sends realistic v2.3.1 ORM^O01 NW messages
(new patient every 5th message, one requested procedure each, a start time, a station) over 1 and
4 MLLP connections, each sending the next message only after the previous ACK (that is how an HIS
interface engine sends). In the same run it measures the parse-only ceilings in this process:
hl7apy ``parse_message`` + hl7apy ACK, and ris's lean reader + hand-built ACK (no database).

    python3 bench/hl7.py                                  # SQLite
    python3 bench/hl7.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python3 bench/hl7.py --profile                        # + where the handler's time goes
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, free_port, fresh_database, port_open, start_serve  # noqa: E402

VT, END = b"\x0b", b"\x1c\x0d"


def message(i: int, run: str) -> bytes:
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


def parse_ceilings(count: int) -> dict[str, tuple[float, float]]:
    """name -> (messages/s, CPU ms per message) of parsing and ACK building alone."""
    from hl7apy.core import Message as ApyMessage
    from hl7apy.parser import parse_message

    from ris.hl7 import er7
    from ris.hl7.ack import build_ack

    messages = [message(i, "P") for i in range(count)]
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


def throughput(port: int, connections: int, count: int, run: str) -> tuple[float, float]:
    """(messages/s, median latency ms) of ``count`` messages over ``connections`` streams."""
    messages = [message(i, run) for i in range(count)]
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
    return count / elapsed, statistics.median(latencies) * 1000


def profile_handler(count: int) -> None:
    import cProfile
    import pstats

    from ris.hl7 import handler

    messages = [message(i, "PROF") for i in range(count)]
    profiler = cProfile.Profile()
    profiler.enable()
    for raw in messages:
        handler.handle(raw, "bench")
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", default="1,4")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    url, data_dir = fresh_database(args.database_url, "hl7")
    mllp_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "RIS_DATA_DIR": data_dir,
            "RIS_HTTP": f"127.0.0.1:{free_port()}",
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
    process = start_serve(env, "web,mllp", port_open(mllp_port), "open its MLLP port")
    try:
        load_catalogue()
        from django.db import connection

        vendor = connection.vendor
        connection.close()
        ceilings = parse_ceilings(300)
        throughput(mllp_port, 1, 100, "WARM")
        results = {}
        server = process_tree(process.pid)
        for connections in [int(c) for c in args.connections.split(",")]:
            before = cpu_seconds(server)
            rate, median_ms = throughput(mllp_port, connections, args.messages, f"C{connections}")
            cpu_ms = (cpu_seconds(server) - before) / args.messages * 1000
            results[connections] = (rate, median_ms, cpu_ms)
        load = os.getloadavg()[0]
        print(
            f"database: {vendor}; {args.messages} ORM^O01 NW per run; ACK after COMMIT; "
            f"load average {load:.1f} on {os.cpu_count()} cores"
        )
        for name, (rate, cpu_ms) in ceilings.items():
            print(
                f"  parse-only ceiling, {name:<26} {rate:8.0f} msg/s   CPU {cpu_ms:.2f} ms/msg "
                "(one core, no database)"
            )
        for connections, (rate, median_ms, cpu_ms) in results.items():
            print(
                f"  {connections} connection(s): {rate:8.0f} msg/s   median round trip "
                f"{median_ms:.2f} ms   server CPU {cpu_ms:.2f} ms/msg"
            )
        if args.profile:
            profile_handler(300)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
