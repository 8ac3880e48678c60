"""A database outage on a PostgreSQL cluster of the test's own: the server process is stopped,
not a database merely closed to connections (tests/pg.py), so every connection ``ris serve`` holds
breaks at once and new ones are refused at the TCP level.

One ``ris serve`` (real MLLP and DICOM listeners, python-hl7 and findscu as peers) lives through
the whole outage: an order before it is acknowledged AA, an order during it AR (never AA, since
nothing was stored) and a C-FIND a failure status with the Error Comment "database unavailable";
after the cluster is back the resend of the refused order is AA and the worklist answers again,
without restarting ``ris serve``. The database then holds exactly the acknowledged orders.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hl7.conftest import orm, read_ack, send, stop_service
from tests.mwl.dcmtk import findscu
from tests.service import RisService, free_port

pytestmark = [pytest.mark.dcmtk]

#: How long a recovery may take: the listeners notice the cluster is back on their next request.
RECOVERY_SECONDS = 60


def _server_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian layout), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(Path(p).parent.parent.name))
    for pg_ctl in reversed(found):
        bindir = Path(pg_ctl).parent
        if os.access(bindir / "initdb", os.X_OK) and os.access(pg_ctl, os.X_OK):
            return bindir
    return None


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster (trust authentication, 127.0.0.1 only) in a tmp dir."""

    bindir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/ris"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                 "-l", str(self.root / "postgres.log"), "-o", options)

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("a PostgreSQL outage test: runs on the PostgreSQL leg of the suite only")
    bindir = _server_binaries()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl)")
    root = Path(tempfile.mkdtemp(prefix="ris-private-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(bindir=bindir, root=root, port=free_port())
    try:
        cluster.run("initdb", "-D", str(cluster.data), "-A", "trust", "-U", "postgres",
                    "-E", "UTF8", "--no-sync")
        cluster.start()
        cluster.run("createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                    "ris")
        yield cluster
    finally:
        try:
            if (cluster.data / "postmaster.pid").exists():
                cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _django(service: RisService, code: str) -> str:
    """Python run by ``ris shell`` against the private cluster (the test's Django database is
    another one); returns the last line it printed (the shell announces its auto-imports)."""
    result = subprocess.run(
        [sys.executable, "-m", "ris.cli", "shell", "-c", code],
        env=service.environment(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


CATALOGUE = """
from worklist.models import Device, ProcedureType
ct1 = Device.objects.create(ae_title="CT1", modality="CT", station_name="CT1",
                            allow_overbooking=True)
head = ProcedureType.objects.create(code_value="CTHEAD", code_scheme="L",
    code_meaning="CT Head", modality="CT", description="CT Head", default_duration_minutes=20)
head.stations.add(ct1)
"""

ORDERS = """
from worklist.models import Order
print(sorted(Order.objects.filter(placer_order_number__startswith="PGOUT")
             .values_list("placer_order_number", flat=True)))
"""


def test_orders_and_worklist_survive_a_stopped_postgresql_cluster(cluster, tmp_path):
    service = RisService(data_dir=tmp_path / "ris", database_url=cluster.url,
                         extra_env={"RIS_DICOM_DB_THREADS": "2"})
    service.start()  # applies the migrations to the empty database
    try:
        service.wait_healthy(timeout=180)
        _django(service, CATALOGUE)

        before = orm("PGOUT-1", "PGOUT1")
        assert read_ack(send(service.mllp_port, before)).code == "AA"
        assert findscu(service.dicom_port, ["PatientID="]).final == "Success"

        cluster.stop()
        try:
            during = orm("PGOUT-2", "PGOUT2", patient_id="P1002")
            refused = read_ack(send(service.mllp_port, during))
            assert refused.code == "AR", refused.raw
            find = findscu(service.dicom_port, ["PatientID="], extra=["-d"])
            assert find.responses == []
            assert "0xc001" in find.output.lower(), find.output
            assert "database unavailable" in find.output, find.output
        finally:
            cluster.start()

        deadline = time.monotonic() + RECOVERY_SECONDS
        codes = []
        while time.monotonic() < deadline:
            codes.append(read_ack(send(service.mllp_port, during)).code)
            if codes[-1] == "AA":
                break
            assert codes[-1] == "AR", codes
            time.sleep(0.5)
        assert codes[-1:] == ["AA"], f"no AA within {RECOVERY_SECONDS}s after the restart: {codes}"
        while findscu(service.dicom_port, ["PatientID="]).final != "Success":
            assert time.monotonic() < deadline, "the worklist did not come back after the outage"
            time.sleep(0.5)
        # the order acknowledged before the outage, sent again, is a duplicate: AA, no new row
        assert read_ack(send(service.mllp_port, before)).code == "AA"

        assert _django(service, ORDERS) == "['PGOUT1', 'PGOUT2']"
        assert service.process.poll() is None, "ris serve restarted or exited"
    finally:
        stop_service(service)
