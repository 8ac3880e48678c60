"""Fixtures of the forwarding tests: one real Orthanc per session, a ris serve per test.

ris listens on one DICOM port for the whole session because Orthanc sends its storage
commitment reports to the address it was configured with; scheduler intervals, retry backoff and
leases are shortened so that retries happen within a test.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from mpps.forwarding.models import PacsDestination
from tests.forwarding.orthanc import Orthanc
from tests.service import RisService, free_port, test_database_url

FAST = {
    "RIS_OUTBOUND_POLL_SECONDS": "1",
    "RIS_OUTBOUND_BACKOFF_MS": "300",
    "RIS_OUTBOUND_BACKOFF_MAX_MS": "1000",
    "RIS_OUTBOUND_LEASE_SECONDS": "3",
    "RIS_PACS_AVAILABILITY_SECONDS": "1",
    "RIS_FORWARD_UPKEEP_SECONDS": "1",
    "RIS_FORWARD_COMMIT_TIMEOUT_SECONDS": "6",
    # Small batches: a study is several associations, so a crash can fall between them.
    "RIS_FORWARD_BATCH_SIZE": "8",
    # Steps that follow the images: a study is stable after 4 s without a new instance.
    "RIS_STUDY_STABLE_SECONDS": "4",
    "RIS_STUDY_STABLE_CHECK_SECONDS": "1",
}


@pytest.fixture(scope="session")
def ris_dicom_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def orthanc_server(tmp_path_factory, ris_dicom_port):
    server = Orthanc(
        tmp_path_factory.mktemp("orthanc"), ris_ae_title="RIS", ris_port=ris_dicom_port
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pacs(orthanc_server) -> Orthanc:
    """The session's Orthanc, running and empty."""
    if orthanc_server.process is None:
        orthanc_server.start()
    orthanc_server.clear()
    return orthanc_server


@pytest.fixture
def destination(pacs) -> PacsDestination:
    return PacsDestination.objects.create(
        name="orthanc",
        ae_title=pacs.ae_title,
        host="127.0.0.1",
        port=pacs.dicom_port,
        send_mpps=False,
        send_images=True,
        storage_commitment=True,
    )


@pytest.fixture(scope="session")
def gateway(django_db_setup, django_db_blocker, tmp_path_factory, ris_dicom_port):
    """One ``ris serve`` (with the storage gateway) for the session, on the port Orthanc knows.

    Tests using it must be ``django_db(transaction=True)``: their rows are committed and seen
    by the server, and flushed after each test.
    """
    with django_db_blocker.unblock():
        url = test_database_url()
    service = RisService(
        data_dir=tmp_path_factory.mktemp("ris-gateway"),
        database_url=url,
        dicom_port=ris_dicom_port,
        extra_env=FAST,
    )
    service.start()
    try:
        # Generous: on a loaded 2-core machine the first migrate check alone can take a while.
        service.wait_healthy(timeout=180)
    except Exception:
        service.stop(timeout=60)
        raise
    yield service
    # The scheduler finishes its running job before it exits: slow on a loaded machine.
    service.stop(timeout=60)


def wait_for(
    predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition", service=None
):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{diagnostics(service)}")


def diagnostics(service=None) -> str:
    """What the queue and the deliveries look like, and the end of the server's log."""
    from mpps.forwarding.models import InstanceDelivery
    from ris.models import OutboundJob

    jobs = list(
        OutboundJob.objects.values_list("kind", "state", "attempts", "last_error", "result")
    )
    deliveries = list(InstanceDelivery.objects.values_list("state", "store_count", "last_status"))
    log = service.log()[-3000:] if service is not None else ""
    return f"jobs: {jobs}\ndeliveries: {deliveries}\nlog:\n{log}"


def descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (Linux /proc)."""
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        found.append(child)
        found.extend(descendants(child))
    return found


def kill_hard(service: RisService) -> None:
    """SIGKILL ``ris serve`` and every child at once, like a power cut: nothing gets to clean up.

    (Killing only the supervisor would leave its children serving: they do not watch it.)
    """
    pids = [service.process.pid, *descendants(service.process.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    service.process.wait()
    for pid in pids[1:]:
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie holds no socket and no lock


def spool_files(service: RisService, datasets) -> list[Path]:
    """The spool files of these instances (other tests' leftovers are not this test's business:
    the database is flushed between tests, the spool directory is not)."""
    uids = {ds.SOPInstanceUID for ds in datasets}
    return [
        path
        for path in service.spool_dir.glob("*/*.dcm")
        if path.name.rsplit(".", 2)[0] in uids
    ]
