"""Soak: a department's mixed load on one ``ris serve`` for a long time; errors, latency and memory.

Starts a real Orthanc and the whole ``ris serve`` (web, DICOM, MLLP, scheduler) on a fresh
database (SQLite in a temp dir, or a fresh PostgreSQL database), then for ``--minutes`` runs:

- an HL7 feed of ``--hl7-rate`` messages/s on one MLLP connection: ORM^O01 NW orders spread
  over ``--modalities`` stations, and (``--cancel-share`` of the messages) CA of earlier orders
  no modality has picked yet, so each station's worklist stays the size of a real day instead
  of growing by thousands;
- ``--modalities`` modalities (threads of this process, one AE title and station each), each
  polling its worklist every ``--poll-min``..``--poll-max`` s (C-FIND, today and tomorrow); for
  the first item it has not done: MPPS N-CREATE IN PROGRESS, ``--images`` CT images to ris's
  storage gateway (C-STORE, one association), MPPS N-SET COMPLETED;
- the gateway forwards every image to Orthanc with storage commitment (the scheduler's queue).

Every minute it samples the resident memory (RSS) of every process of the ``ris serve`` tree.
At the end: requests and errors per interface (an error is any exception, refused
association, non-success status or HL7 ACK other than AA; there must be none), p50/p95/p99
latency per interface, the images at the PACS against those sent, and memory per process:
first sample after ``--warmup-minutes`` against the last (growth %). Exit status 1 if any error
occurred or images were lost.

    python3 bench/soak.py --minutes 30                  # the issue's run (SQLite)
    python3 bench/soak.py --minutes 2 --modalities 10   # the short form
    python3 bench/soak.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

The load generator shares the machine with ris: its latencies include its own scheduling on a
busy host (it is one Python process with a thread per modality).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import os
import random
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, free_port, fresh_database, port_open, start_serve  # noqa: E402

VT, END = b"\x0b", b"\x1c\x0d"


class Recorder:
    """Latencies and errors per interface, from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()
        self.examples: list[str] = []

    def ok(self, interface: str, seconds: float) -> None:
        with self.lock:
            self.latencies[interface].append(seconds)

    def error(self, interface: str, what: str) -> None:
        with self.lock:
            self.errors[interface] += 1
            if len(self.examples) < 20:
                self.examples.append(f"{time.strftime('%H:%M:%S')} {interface}: {what[:300]}")


class Orders:
    """Which feed orders exist, which a modality took (never cancelled after that)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: collections.deque[str] = collections.deque()  # placer numbers, oldest first
        self.taken: set[str] = set()  # patient IDs (= placer numbers) a modality performs

    def add(self, placer: str) -> None:
        with self.lock:
            self.open.append(placer)

    def take(self, placer: str) -> bool:
        with self.lock:
            if placer in self.taken:
                return False
            try:
                self.open.remove(placer)
            except ValueError:
                return False  # cancelled by the feed (or not ours)
            self.taken.add(placer)
            return True

    def oldest_untaken(self, keep: int) -> str | None:
        """An order to cancel: the oldest still open, once more than ``keep`` are open."""
        with self.lock:
            if len(self.open) <= keep:
                return None
            return self.open.popleft()


# --- HL7 -----------------------------------------------------------------------------------


def order_message(n: int, control: str, station: int, start: dt.datetime,
                  control_code: str) -> bytes:
    placer = f"SK{n:07d}"
    segments = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|{dt.datetime.now():%Y%m%d%H%M%S}||ORM^O01|{control}|P|2.3.1",
        f"PID|1||{placer}^^^HOSP^MR||Soak^Patient{n}||19700101|F",
        "PV1|1|O|RAD",
        f"ORC|{control_code}|{placer}^HIS|||||^^^{start:%Y%m%d%H%M}",
        f"OBR|1|{placer}^HIS||SOAK{station:02d}^Soak exam {station}^L|||||||||||||||||||CT",
    ]
    return ("\r".join(segments) + "\r").encode()


def hl7_feed(port: int, args, orders: Orders, rec: Recorder, stop: threading.Event) -> None:
    rng = random.Random(1)
    interval = 1.0 / args.hl7_rate
    sock = None
    n = sent = 0
    next_at = time.monotonic()
    pending_new: dict[str, int] = {}
    while not stop.is_set():
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cancel = rng.random() < args.cancel_share and orders.oldest_untaken(args.modalities * 3)
        if cancel:
            number = int(cancel[2:])
            message = order_message(number, f"C{sent:08d}", pending_new.get(cancel, 0),
                                    dt.datetime.now(), "CA")
            kind = "hl7 CA"
        else:
            n += 1
            station = rng.randrange(args.modalities)
            start = dt.datetime.now() + dt.timedelta(minutes=rng.randrange(5, 240))
            message = order_message(n, f"N{sent:08d}", station, start, "NW")
            kind = "hl7 NW"
        sent += 1
        started = time.perf_counter()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=30)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(VT + message + END)
            reply = b""
            while END not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed by ris")
                reply += chunk
        except OSError as exc:
            rec.error(kind, repr(exc))
            if sock is not None:
                sock.close()
            sock = None
            continue
        if b"MSA|AA|" not in reply:
            rec.error(kind, reply.decode("utf-8", "replace").replace("\r", " | "))
            continue
        rec.ok("hl7", time.perf_counter() - started)
        if not cancel:
            placer = f"SK{n:07d}"
            pending_new[placer] = station
            orders.add(placer)
    if sock is not None:
        sock.close()


# --- modalities ----------------------------------------------------------------------------


def _find_identifier(ae_title: str):
    from pydicom.dataset import Dataset

    today = dt.date.today()
    sps = Dataset()
    sps.ScheduledStationAETitle = ae_title
    sps.ScheduledProcedureStepStartDate = f"{today:%Y%m%d}-{today + dt.timedelta(days=1):%Y%m%d}"
    sps.ScheduledProcedureStepStartTime = ""
    sps.Modality = ""
    sps.ScheduledProcedureStepID = ""
    sps.ScheduledProcedureStepDescription = ""
    ds = Dataset()
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.AccessionNumber = ""
    ds.StudyInstanceUID = ""
    ds.RequestedProcedureID = ""
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def _n_create(item, ae_title: str):
    from pydicom.dataset import Dataset

    now = dt.datetime.now()
    sps = item.ScheduledProcedureStepSequence[0]
    step = Dataset()
    step.StudyInstanceUID = item.StudyInstanceUID
    step.ReferencedStudySequence = []
    step.AccessionNumber = item.AccessionNumber
    step.RequestedProcedureID = item.RequestedProcedureID
    step.RequestedProcedureDescription = ""
    step.ScheduledProcedureStepID = sps.ScheduledProcedureStepID
    step.ScheduledProcedureStepDescription = sps.get("ScheduledProcedureStepDescription", "")
    step.ScheduledProtocolCodeSequence = []
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = item.PatientName
    ds.PatientID = item.PatientID
    ds.PatientBirthDate = item.get("PatientBirthDate", "")
    ds.PatientSex = item.get("PatientSex", "")
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = now.strftime("%H%M%S%f")[:16]
    ds.PerformedStationAETitle = ae_title
    ds.PerformedStationName = ae_title
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = now.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = now.strftime("%H%M%S")
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = ""
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "CT"
    ds.StudyID = "1"
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def _n_set(images) -> object:
    from pydicom.dataset import Dataset

    now = dt.datetime.now()
    series = Dataset()
    series.PerformingPhysicianName = ""
    series.ProtocolName = "Soak"
    series.OperatorsName = "Tech^One"
    series.SeriesInstanceUID = images[0].SeriesInstanceUID
    series.SeriesDescription = "Soak"
    series.RetrieveAETitle = "PACS"
    refs = []
    for image in images:
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.SOPClassUID
        ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
        refs.append(ref)
    series.ReferencedImageSequence = refs
    series.ReferencedNonImageCompositeSOPInstanceSequence = []
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = now.strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = now.strftime("%H%M%S")
    ds.PerformedSeriesSequence = [series]
    return ds


def _timed(rec: Recorder, interface: str, call):
    started = time.perf_counter()
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - every failure is counted, the soak goes on
        rec.error(interface, repr(exc))
        return None
    rec.ok(interface, time.perf_counter() - started)
    return result


def modality(index: int, port: int, args, orders: Orders, rec: Recorder, stop: threading.Event,
             sent_images: list[str]) -> None:
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    from pynetdicom import AE
    from pynetdicom.sop_class import (
        CTImageStorage,
        ModalityPerformedProcedureStep,
        ModalityWorklistInformationFind,
    )

    from tests.forwarding.instances import ct_study

    ae_title = f"MOD{index:02d}"
    rng = random.Random(index)
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    stop.wait(rng.uniform(0, args.poll_max))  # not all at once
    while not stop.is_set():
        def find():
            assoc = ae.associate("127.0.0.1", port, ae_title="RIS")
            if not assoc.is_established:
                raise ConnectionError("association for C-FIND refused")
            items = []
            try:
                for status, identifier in assoc.send_c_find(_find_identifier(ae_title),
                                                            ModalityWorklistInformationFind):
                    if status is None or status.Status not in (0x0000, 0xFF00, 0xFF01):
                        raise RuntimeError(f"C-FIND status {status}")
                    if identifier is not None and status.Status in (0xFF00, 0xFF01):
                        items.append(identifier)
            finally:
                assoc.release()
            return items

        items = _timed(rec, "mwl c-find", find) or []
        item = next((i for i in items if orders.take(str(i.PatientID))), None)
        if item is not None:
            images = ct_study(args.images, patient_id=str(item.PatientID),
                              study_uid=str(item.StudyInstanceUID))
            for image in images:
                image.AccessionNumber = item.AccessionNumber

            def perform(item=item, images=images):
                assoc = ae.associate("127.0.0.1", port, ae_title="RIS")
                if not assoc.is_established:
                    raise ConnectionError("association for MPPS refused")
                try:
                    started = time.perf_counter()
                    uid = generate_uid()
                    status, _ = assoc.send_n_create(
                        _n_create(item, ae_title), ModalityPerformedProcedureStep, uid)
                    if status is None or status.Status != 0:
                        raise RuntimeError(f"N-CREATE status {status}")
                    rec.ok("mpps n-create", time.perf_counter() - started)
                    started = time.perf_counter()
                    for image in images:
                        result = assoc.send_c_store(image)
                        if result is None or result.Status != 0:
                            raise RuntimeError(f"C-STORE status {result}")
                    rec.ok("c-store exam", time.perf_counter() - started)
                    sent_images.extend(str(i.SOPInstanceUID) for i in images)
                    started = time.perf_counter()
                    status, _ = assoc.send_n_set(_n_set(images), ModalityPerformedProcedureStep,
                                                 uid)
                    if status is None or status.Status != 0:
                        raise RuntimeError(f"N-SET status {status}")
                    rec.ok("mpps n-set", time.perf_counter() - started)
                finally:
                    assoc.release()

            _timed(rec, "exam", perform)
        stop.wait(rng.uniform(args.poll_min, args.poll_max))


# --- memory ---------------------------------------------------------------------------------


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


def _label(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return str(pid)
    words = [a.decode(errors="replace") for a in argv if a]
    if "ris.cli" in words:
        rest = words[words.index("ris.cli") + 1:]
        return f"{rest[0] if rest else 'ris'} ({pid})"
    return f"{Path(words[0]).name if words else '?'} ({pid})"


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample_memory(serve_pid: int) -> dict[str, float]:
    return {_label(pid): mb for pid in process_tree(serve_pid) if (mb := rss_mb(pid)) is not None}


# --- setup and report -------------------------------------------------------------------------


def load_catalogue(modalities: int) -> None:
    from worklist.models import Device, ProcedureOrderCode, ProcedureType

    for index in range(modalities):
        station = Device.objects.create(ae_title=f"MOD{index:02d}", modality="CT",
                                        station_name=f"MOD{index:02d}", allow_overbooking=True)
        ptype = ProcedureType.objects.create(code_value=f"SOAK{index:02d}",
                                             code_meaning=f"Soak exam {index}", modality="CT")
        ptype.stations.add(station)
        ProcedureOrderCode.objects.create(code=f"SOAK{index:02d}", coding_system="L",
                                          procedure_type=ptype)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="memory baseline after this long (default: a sixth of the run)")
    parser.add_argument("--modalities", type=int, default=40)
    parser.add_argument("--hl7-rate", type=float, default=20.0, help="HL7 messages per second")
    parser.add_argument("--cancel-share", type=float, default=0.45,
                        help="share of the HL7 messages that cancel an earlier unpicked order")
    parser.add_argument("--poll-min", type=float, default=10.0)
    parser.add_argument("--poll-max", type=float, default=30.0)
    parser.add_argument("--images", type=int, default=2, help="CT images per exam")
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    args = parser.parse_args()
    warmup = args.warmup_minutes if args.warmup_minutes is not None else args.minutes / 6

    url, data_dir = fresh_database(args.database_url, "soak")
    ports = {name: free_port() for name in ("dicom", "mllp", "http")}
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url,
        "RIS_DATA_DIR": data_dir,
        "RIS_DICOM_PORT": str(ports["dicom"]),
        "RIS_DICOM_HOST": "127.0.0.1",
        "RIS_MLLP_PORT": str(ports["mllp"]),
        "RIS_MLLP_HOST": "127.0.0.1",
        "RIS_HTTP": f"127.0.0.1:{ports['http']}",
        "RIS_AE_TITLE": "RIS",
        "RIS_ADMIN_PASSWORD": "bench-admin-password",
        "RIS_LOG_LEVEL": "WARNING",
        "RIS_OUTBOUND_POLL_SECONDS": "1",
        "DJANGO_SETTINGS_MODULE": "ris.settings",
    })
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from mpps.forwarding.models import InstanceDelivery, PacsDestination
    from tests.forwarding.orthanc import Orthanc

    load_catalogue(args.modalities)
    orthanc = Orthanc(Path(data_dir) / "orthanc", ris_ae_title="RIS",
                      ris_port=ports["dicom"]).start()
    PacsDestination.objects.create(name="orthanc", ae_title=orthanc.ae_title, host="127.0.0.1",
                                   port=orthanc.dicom_port, storage_commitment=True,
                                   send_mpps=False)  # Orthanc is no MPPS SCP
    vendor = connection.vendor
    connection.close()
    ris = start_serve(env, "web,dicom,mllp,scheduler", port_open(ports["mllp"]),
                      "open its MLLP port", timeout=180)
    deadline = time.monotonic() + 120
    while not port_open(ports["dicom"])() and time.monotonic() < deadline:
        time.sleep(0.3)

    rec, orders, stop = Recorder(), Orders(), threading.Event()
    sent_images: list[str] = []
    threads = [threading.Thread(target=hl7_feed, args=(ports["mllp"], args, orders, rec, stop),
                                daemon=True)]
    threads += [threading.Thread(target=modality,
                                 args=(i, ports["dicom"], args, orders, rec, stop, sent_images),
                                 daemon=True) for i in range(args.modalities)]
    print(f"soak: {args.minutes} min, database {vendor}, {args.modalities} modalities polling "
          f"every {args.poll_min:g}-{args.poll_max:g} s, HL7 {args.hl7_rate:g} msg/s "
          f"({args.cancel_share:.0%} CA), {args.images} images per exam, "
          f"{os.cpu_count()} CPUs", flush=True)
    samples: list[tuple[float, dict[str, float]]] = []
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        end = started + args.minutes * 60
        next_sample = started
        while time.monotonic() < end:
            if time.monotonic() >= next_sample:
                sample = sample_memory(ris.pid)
                minute = (time.monotonic() - started) / 60
                samples.append((minute, sample))
                with rec.lock:
                    done = {k: len(v) for k, v in rec.latencies.items()}
                    errors = sum(rec.errors.values())
                print(f"  {minute:5.1f} min  RSS " + ", ".join(
                    f"{k} {v:.0f}" for k, v in sorted(sample.items())) +
                    f" MB | done {done} | errors {errors}", flush=True)
                next_sample += args.sample_seconds
            time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(90)
        samples.append(((time.monotonic() - started) / 60, sample_memory(ris.pid)))

        # forwarding: wait for the queue to deliver what was sent
        deliveries = InstanceDelivery.objects.all()
        deadline = time.monotonic() + 300
        expected = len(sent_images)
        while time.monotonic() < deadline:
            done_count = deliveries.filter(state=InstanceDelivery.State.COMMITTED).count()
            if done_count >= expected:
                break
            time.sleep(1)
        committed = deliveries.filter(state=InstanceDelivery.State.COMMITTED).count()
        at_pacs = orthanc.get("/statistics")["CountInstances"]
        connection.close()
    finally:
        stop.set()
        ris.terminate()
        ris.wait(60)
        orthanc.stop()
        drop_database(url, args.database_url)

    print(f"\nsoak over: {args.minutes} min on {vendor}")
    print(f"{'interface':<15}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for interface in sorted(set(rec.latencies) | set(rec.errors)):
        values = rec.latencies.get(interface, [])
        print(f"{interface:<15}{len(values):>9}{rec.errors.get(interface, 0):>8}"
              f"{percentile(values, .5) * 1000:>9.1f}{percentile(values, .95) * 1000:>9.1f}"
              f"{percentile(values, .99) * 1000:>9.1f}")
    print(f"images: {len(sent_images)} sent by modalities, {committed} committed by the PACS, "
          f"{at_pacs} at the PACS")
    for example in rec.examples:
        print(f"  error {example}")
    # Single samples catch transient peaks (a burst of HL7 in flight): compare medians of the
    # first and the last third of the samples after warm-up, and show the range.
    settled = [(m, s) for m, s in samples if m >= warmup] or samples
    third = max(1, len(settled) // 3)
    early, late = settled[:third], settled[-third:]
    last = samples[-1][1]
    print(f"memory (RSS MB), median of the samples at {early[0][0]:.0f}-{early[-1][0]:.0f} min "
          f"(after warm-up) against those at {late[0][0]:.0f}-{late[-1][0]:.0f} min:")
    for name in sorted(last):
        before = [s[name] for _, s in early if name in s]
        after = [s[name] for _, s in late if name in s]
        every = [s[name] for _, s in samples if name in s]
        if not before or not after:
            continue
        b, a = statistics.median(before), statistics.median(after)
        print(f"  {name:<24} start {every[0]:6.0f}  settled {b:6.0f}  end {a:6.0f}  "
              f"({(a - b) / b * 100:+.1f}%)  range {min(every):.0f}-{max(every):.0f}")
    total = sum(v for v in last.values())
    print(f"  whole tree end {total:.0f} MB")
    failed = sum(rec.errors.values()) > 0 or committed < len(sent_images)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
