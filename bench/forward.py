"""PACS forwarding throughput: instances/s through the ris storage gateway into Orthanc, side by
side with DCMTK ``storescu`` straight into the same Orthanc, on the same files, in the same run.

Starts a real Orthanc (Debian package, own config and storage under a temp dir, storage
commitment SCP on) and a real ``ris serve --only dicom,scheduler`` on a fresh database (SQLite in
the temp dir, or a fresh PostgreSQL database), books one order, writes ``--instances`` CT images
(``--size`` x ``--size``, 16 bit, Explicit VR Little Endian) of that order's study, then:

1. direct: ``storescu`` sends the files to Orthanc (one association); wall time until it exits;
   the study is then deleted from Orthanc;
2. gateway: ``storescu`` sends the same files to ris (one association). Measured: until storescu
   exits (what the modality waits for: each instance coerced to the order and fsynced in the
   spool before Success), and until every instance is stored in Orthanc AND committed by its
   storage commitment report (what "forwarded" means); the spool must then be empty.

The queue is polled every second (``RIS_OUTBOUND_POLL_SECONDS=1``), so forwarding starts up to a
second after the first instance arrives; it then overlaps with the reception.

    python3 bench/forward.py                                   # SQLite
    python3 bench/forward.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._harness import drop_database, free_port, fresh_database, port_open, start_serve  # noqa: E402
from tests.mwl.dcmtk import tool  # noqa: E402


def book_order() -> str:
    """One scheduled CT step; its Study Instance UID."""
    from django.utils import timezone

    from worklist import services
    from worklist.audit import Actor
    from worklist.models import Device, ProcedureType

    actor = Actor.system("bench")
    ptype = ProcedureType.objects.create(
        code_value="CTCHEST", code_meaning="CT Chest", modality="CT"
    )
    station = Device.objects.create(ae_title="CT1", modality="CT")
    patient, _ = services.patient_upsert(patient_id="P000001", name="Bench^Patient", actor=actor)
    order = services.order_create(
        patient=patient,
        procedures=[
            services.ProcedureRequest(ptype, scheduled_start=timezone.now(), station=station)
        ],
        actor=actor,
    )
    return order.procedures.get().study_instance_uid


def write_study(study_uid: str, count: int, size: int, directory: Path) -> list[Path]:
    from tests.forwarding.instances import ct_study, write_files

    images = ct_study(count, series=2, study_uid=study_uid)
    pixels = bytes(size * size * 2)
    for ds in images:
        ds.Rows = ds.Columns = size
        ds.PixelData = pixels
    return write_files(images, directory)


def storescu(ae_title: str, port: int, files: list[Path]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [tool("storescu"), "-aet", "CT1", "-aec", ae_title, "127.0.0.1", str(port),
         *map(str, files)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--size", type=int, default=256, help="rows = columns of each image")
    args = parser.parse_args()

    url, data_dir = fresh_database(args.database_url, "forward")
    ris_port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": url,
            "RIS_DATA_DIR": data_dir,
            "RIS_DICOM_PORT": str(ris_port),
            "RIS_DICOM_HOST": "127.0.0.1",
            "RIS_AE_TITLE": "RIS",
            "RIS_ADMIN_PASSWORD": "bench-admin-password",
            "RIS_LOG_LEVEL": "WARNING",
            "RIS_OUTBOUND_POLL_SECONDS": "1",
            "DJANGO_SETTINGS_MODULE": "ris.settings",
        }
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connection

    from mpps.forwarding.models import InstanceDelivery, PacsDestination
    from tests.forwarding.orthanc import Orthanc

    orthanc = Orthanc(Path(data_dir) / "orthanc", ris_ae_title="RIS", ris_port=ris_port).start()
    ris = None
    try:
        study_uid = book_order()
        PacsDestination.objects.create(
            name="orthanc", ae_title=orthanc.ae_title, host="127.0.0.1", port=orthanc.dicom_port
        )
        files = write_study(study_uid, args.instances, args.size, Path(data_dir) / "study")
        megabytes = sum(f.stat().st_size for f in files) / 1e6
        vendor = connection.vendor
        connection.close()
        ris = start_serve(env, "dicom,scheduler", port_open(ris_port), "open its DICOM port",
                          timeout=120)

        direct = storescu(orthanc.ae_title, orthanc.dicom_port, files)
        assert orthanc.get("/statistics")["CountInstances"] == args.instances
        orthanc.clear()

        started = time.perf_counter()
        ingest = storescu("RIS", ris_port, files)
        committed = InstanceDelivery.objects.filter(state=InstanceDelivery.State.COMMITTED)
        while committed.count() < args.instances:
            time.sleep(0.05)
        total = time.perf_counter() - started
        at_pacs = orthanc.get("/statistics")["CountInstances"]
        assert at_pacs == args.instances, f"{at_pacs} instances at the PACS"
        deadline = time.monotonic() + 30
        while list((Path(data_dir) / "spool").glob("*/*.dcm")) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = len(list((Path(data_dir) / "spool").glob("*/*.dcm")))

        n = args.instances
        print(
            f"database: {vendor}; {n} CT instances {args.size}x{args.size} "
            f"({megabytes:.1f} MB), one association each way"
        )
        print(
            f"  storescu -> Orthanc (direct)       : {n / direct:7.1f} instances/s ({direct:.2f} s)"
        )
        print(
            f"  storescu -> ris gateway (ingest)   : {n / ingest:7.1f} instances/s ({ingest:.2f} s)"
        )
        print(
            f"  storescu -> ris -> Orthanc committed: {n / total:7.1f} instances/s "
            f"({total:.2f} s)  ratio to direct {direct / total:.2f}"
        )
        print(f"  spool files left after commitment  : {left}")
    finally:
        if ris is not None:
            ris.terminate()
            ris.wait(30)
        orthanc.stop()
        connection.close()
        drop_database(url, args.database_url)


if __name__ == "__main__":
    main()
