"""MPPS throughput: a full N-CREATE (IN PROGRESS) + N-SET (COMPLETED) cycle against ``ris dicom``.

Runs a real ``ris serve --only dicom`` on a fresh database (SQLite in a temp dir, or a fresh
PostgreSQL database), books one scheduled step per cycle on 4 CT stations, then plays modalities:
each cycle is what a modality does for one exam (IHE RAD-6 + RAD-7): associate, N-CREATE with the
Scheduled Step Attributes of the worklist item, release; associate, N-SET COMPLETED with one series
of 20 referenced images, release. Every N-CREATE starts a step and moves the order to IP, every
N-SET completes the step and the order (two state changes, audit rows, signals). Measured:

- one modality alone: median and p95 of the cycle, cycles/s;
- 4 modalities at once (one process each, its own station): cycles/s over all, median/p95;
- the CPU time the ``ris dicom`` listener spent per cycle (robust on a busy machine);
- the same cycle through ``mpps.services`` in this process, without DIMSE (what the database,
  validation and state machine cost).

At the end it checks that every step of the run is COMPLETED (a benchmark that loses work is not
measuring the right thing).

    python3 bench/mpps.py                                   # SQLite
    python3 bench/mpps.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, free_port, fresh_database, port_open, start_serve  # noqa: E402

STATIONS = ["CT1", "CT2", "CT3", "CT4"]


def book_steps(per_station: int) -> dict[str, list[dict]]:
    """Scheduled steps, as the worklist gives them to each station (plain dicts for workers)."""
    from django.utils import timezone

    from worklist import services
    from worklist.audit import Actor
    from worklist.models import Device, Patient, ProcedureType

    actor = Actor.system("bench")
    ptype = ProcedureType.objects.create(
        code_value="CTCHEST", code_meaning="CT Chest", modality="CT"
    )
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    booked: dict[str, list[dict]] = {}
    for s, ae_title in enumerate(STATIONS):
        station = Device.objects.create(ae_title=ae_title, modality="CT", allow_overbooking=True)
        booked[ae_title] = []
        for i in range(per_station):
            patient, _ = services.patient_upsert(
                patient_id=f"P{s}{i:06d}", name=f"Bench^Patient{i}", actor=actor
            )
            order = services.order_create(
                patient=patient,
                procedures=[
                    services.ProcedureRequest(
                        ptype, scheduled_start=start + dt.timedelta(minutes=i), station=station
                    )
                ],
                actor=actor,
            )
            procedure = order.procedures.get()
            step = procedure.steps.get()
            booked[ae_title].append(
                {
                    "study_uid": procedure.study_instance_uid,
                    "accession": order.accession_number,
                    "rp_id": procedure.requested_procedure_id,
                    "sps_id": step.sps_id,
                    "patient_id": patient.patient_id,
                    "patient_name": str(patient.person_name),
                }
            )
    assert Patient.objects.count() == len(STATIONS) * per_station
    return booked


def _n_create_dataset(step: dict, ae_title: str):
    from pydicom.dataset import Dataset

    now = dt.datetime.now()
    item = Dataset()
    item.StudyInstanceUID = step["study_uid"]
    item.ReferencedStudySequence = []
    item.AccessionNumber = step["accession"]
    item.RequestedProcedureID = step["rp_id"]
    item.RequestedProcedureDescription = "CT Chest"
    item.ScheduledProcedureStepID = step["sps_id"]
    item.ScheduledProcedureStepDescription = "CT Chest"
    item.ScheduledProtocolCodeSequence = []
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ScheduledStepAttributesSequence = [item]
    ds.PatientName = step["patient_name"]
    ds.PatientID = step["patient_id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = now.strftime("%H%M%S%f")[:16]
    ds.PerformedStationAETitle = ae_title
    ds.PerformedStationName = ae_title
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = now.strftime("%Y%m%d")
    ds.PerformedProcedureStepStartTime = now.strftime("%H%M%S")
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepDescription = "CT Chest"
    ds.PerformedProcedureTypeDescription = ""
    ds.ProcedureCodeSequence = []
    ds.PerformedProcedureStepEndDate = ""
    ds.PerformedProcedureStepEndTime = ""
    ds.Modality = "CT"
    ds.StudyID = "1"
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def _n_set_dataset(images: int):
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    now = dt.datetime.now()
    series = Dataset()
    series.PerformingPhysicianName = ""
    series.ProtocolName = "Chest routine"
    series.OperatorsName = "Tech^One"
    series.SeriesInstanceUID = generate_uid()
    series.SeriesDescription = "Chest"
    series.RetrieveAETitle = "PACS"
    refs = []
    for _ in range(images):
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = generate_uid()
        refs.append(ref)
    series.ReferencedImageSequence = refs
    series.ReferencedNonImageCompositeSOPInstanceSequence = []
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate = now.strftime("%Y%m%d")
    ds.PerformedProcedureStepEndTime = now.strftime("%H%M%S")
    ds.PerformedSeriesSequence = [series]
    return ds


def play_modality(args: tuple[int, str, list[dict], int]) -> list[float]:
    """One modality: a cycle per step, one association per message (as most modalities do)."""
    port, ae_title, steps, images = args
    from pydicom.uid import generate_uid
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import ModalityPerformedProcedureStep

    _config.LOG_HANDLER_LEVEL = "none"
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    durations = []
    for step in steps:
        create, final = _n_create_dataset(step, ae_title), _n_set_dataset(images)
        uid = generate_uid()
        started = time.perf_counter()
        assoc = ae.associate("127.0.0.1", port, ae_title="RIS")
        status, _ = assoc.send_n_create(create, ModalityPerformedProcedureStep, uid)
        assoc.release()
        assert status.Status == 0, f"N-CREATE failed: 0x{status.Status:04X} {status}"
        assoc = ae.associate("127.0.0.1", port, ae_title="RIS")
        status, _ = assoc.send_n_set(final, ModalityPerformedProcedureStep, uid)
        assoc.release()
        assert status.Status == 0, f"N-SET failed: 0x{status.Status:04X} {status}"
        durations.append(time.perf_counter() - started)
    return durations


def service_only(steps: list[dict], images: int) -> list[float]:
    """The same cycle through ``mpps.services`` in this process: no association, no DIMSE.

    The attribute lists are encoded and decoded first, so the services read raw elements as they
    do behind the SCP. What is left is validation, the database and the state machine.
    """
    from io import BytesIO

    from pydicom.uid import generate_uid
    from pynetdicom.dsutils import decode, encode

    from mpps import services
    from worklist.audit import Actor

    actor = Actor.ae("CT1")
    durations = []
    for step in steps:
        create = decode(BytesIO(encode(_n_create_dataset(step, "CT1"), False, True)), False, True)
        final = decode(BytesIO(encode(_n_set_dataset(images), False, True)), False, True)
        uid = generate_uid()
        started = time.perf_counter()
        services.pps_create(sop_instance_uid=uid, dataset=create, actor=actor)
        services.pps_update(sop_instance_uid=uid, dataset=final, actor=actor)
        durations.append(time.perf_counter() - started)
    return durations


def listener_cpu_seconds(serve_pid: int) -> float:
    """CPU time (user + system) used so far by the ``ris dicom`` child of ``ris serve``.

    On a loaded machine wall-clock latency mostly measures the neighbours; the listener's own CPU
    per cycle says what one core can take. (PostgreSQL's own CPU is in its server processes.)
    """
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == serve_pid and b"dicom" in cmdline:
            return (int(fields[11]) + int(fields[12])) / ticks
    raise RuntimeError("the ris dicom listener process was not found")


def summary(durations: list[float]) -> tuple[float, float]:
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p95 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--cycles", type=int, default=50, help="cycles per modality")
    parser.add_argument("--images", type=int, default=20, help="referenced images per N-SET")
    args = parser.parse_args()

    url, data_dir = fresh_database(args.database_url, "mpps")
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "RIS_DATA_DIR": data_dir,
            "RIS_DICOM_PORT": str(port),
            "RIS_DICOM_HOST": "127.0.0.1",
            "RIS_ADMIN_PASSWORD": "bench-admin-password",
            "RIS_LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "ris.settings",
        }
    )
    os.environ.update(env)
    import django

    django.setup()
    process = start_serve(env, "dicom", port_open(port), "open its DICOM port")
    try:
        from django.db import connection

        from worklist.models import ScheduledProcedureStep, StepStatus

        warmup = 20
        booked = book_steps(warmup + 3 * args.cycles)
        vendor = connection.vendor
        connection.close()
        # Warm-up, then one modality alone, then four at once (each on its own station).
        play_modality((port, "CT1", booked["CT1"][:warmup], args.images))
        alone = play_modality(
            (port, "CT1", booked["CT1"][warmup : warmup + args.cycles], args.images)
        )
        jobs = [
            (port, ae, booked[ae][warmup + args.cycles : warmup + 2 * args.cycles], args.images)
            for ae in STATIONS
        ]
        cpu_before = listener_cpu_seconds(process.pid)
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(len(STATIONS)) as pool:
            together = [d for durations in pool.map(play_modality, jobs) for d in durations]
        wall = time.perf_counter() - started
        cpu_per_cycle = (listener_cpu_seconds(process.pid) - cpu_before) / len(together)

        in_process = service_only(booked["CT2"][warmup + 2 * args.cycles :], args.images)
        connection.close()

        done = ScheduledProcedureStep.objects.filter(status=StepStatus.COMPLETED).count()
        expected = warmup + 2 * args.cycles + len(STATIONS) * args.cycles
        assert done == expected, f"{done} steps completed, expected {expected}"

        median, p95 = summary(alone)
        print(
            f"database: {vendor}; cycle = associate, N-CREATE, release, associate, "
            f"N-SET COMPLETED ({args.images} images), release"
        )
        print(
            f"  1 modality : median {median:6.1f} ms  p95 {p95:6.1f} ms  "
            f"{len(alone) / sum(alone):6.1f} cycles/s  ({len(alone)} cycles)"
        )
        median, p95 = summary(together)
        print(
            f"  4 modalities: median {median:6.1f} ms  p95 {p95:6.1f} ms  "
            f"{len(together) / wall:6.1f} cycles/s  ({len(together)} cycles in {wall:.1f} s)"
        )
        print(
            f"  listener CPU per cycle (4 modalities): {cpu_per_cycle * 1000:6.1f} ms "
            f"-> at most {1 / cpu_per_cycle:5.1f} cycles/s per core"
        )
        median, p95 = summary(in_process)
        print(
            f"  services only, in process (no DIMSE): median {median:6.1f} ms  p95 {p95:6.1f} ms"
        )
        print(f"  steps completed: {done}/{expected}")
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
