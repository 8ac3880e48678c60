"""worklist/mwl/dbthreads.py: DIMSE reads on database connections kept across associations."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import OperationalError, connection

from worklist.models import Device
from worklist.mwl.dbthreads import KeptConnections

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kept():
    pool = KeptConnections(1)
    yield pool
    pool.close()


def _backend_connection() -> int:
    Device.objects.exists()
    return id(connection.connection)


def test_reads_from_two_associations_share_one_kept_connection(kept):
    seen: list[int] = []

    def association() -> None:  # pynetdicom: a new thread per association
        seen.append(kept.run(_backend_connection))

    for _ in range(2):
        thread = threading.Thread(target=association)
        thread.start()
        thread.join()
    assert len(seen) == 2 and seen[0] == seen[1]


def test_a_read_sees_rows_committed_after_its_connection_was_opened(kept):
    assert kept.run(lambda: Device.objects.filter(ae_title="CT9").exists()) is False
    Device.objects.create(ae_title="CT9", modality="CT")
    assert kept.run(lambda: Device.objects.filter(ae_title="CT9").exists()) is True


def test_a_read_that_loses_its_connection_is_run_once_more_on_a_new_one(kept):
    calls: list[int] = []

    def read() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return Device.objects.exists()

    assert kept.run(read) is False
    assert len(calls) == 2


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL server process")
def test_a_kept_connection_whose_server_process_died_is_replaced(kept):
    pid = kept.run(lambda: connection.cursor().connection.info.backend_pid)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10  # the signal is asynchronous: wait for the process to go
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.05)
    assert kept.run(lambda: Device.objects.count()) == 0
    assert kept.run(lambda: connection.cursor().connection.info.backend_pid) != pid
