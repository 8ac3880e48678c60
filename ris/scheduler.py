"""The background scheduler: periodic jobs (outbound queues, PACS availability, heartbeat).

Exactly one scheduler may run per database, whatever number of ris processes share it: the leader
holds a PostgreSQL advisory lock on a connection of its own (or, on SQLite, an exclusive lock on a
file beside the database). Others wait as standbys and take over when the leader dies, because
the database releases the lock with the leader's connection.

The leader checks every ``RIS_SCHEDULER_LOCK_CHECK_SECONDS`` that it still holds the lock: a
PostgreSQL restart, a network cut or an idle-session timeout ends the lock's session, the lock is
released and a standby takes it. The old leader then stops its jobs and stands by itself instead
of running on as a second leader.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger("ris.scheduler")

#: Arbitrary, stable 64-bit key of the "ris scheduler leader" advisory lock.
ADVISORY_LOCK_KEY = 0x7269735F73636864


@dataclass(frozen=True)
class Job:
    id: str
    func: str  # "module:function"
    seconds: int


def configured_jobs() -> list[Job]:
    jobs = [Job("heartbeat", "ris.scheduler:beat", settings.RIS_SCHEDULER_HEARTBEAT_SECONDS)]
    for spec in settings.RIS_SCHEDULER_JOBS:
        jobs.append(Job(*spec))
    return jobs


def beat() -> None:
    from ris.health import heartbeat

    heartbeat("scheduler", f"pid {os.getpid()}")


def run_job(path: str) -> None:
    """Run one job with fresh database connections: jobs run in APScheduler's worker threads."""
    module_name, func_name = path.split(":")
    close_old_connections()
    try:
        getattr(importlib.import_module(module_name), func_name)()
    finally:
        connection.close()


class LeaderLock:
    """Held while this process is the one scheduler of its database."""

    def __init__(self) -> None:
        self._pg = None
        self._file = None

    def try_acquire(self) -> bool:
        if connection.vendor == "postgresql":
            return self._try_pg()
        return self._try_file()

    def _try_pg(self) -> bool:
        import psycopg

        if self._pg is None:
            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            # A cut network must not leave the check blocked for the kernel's 2-hour default:
            # keepalives and a TCP user timeout end the session within seconds (libpq settings).
            params.setdefault("keepalives", 1)
            params.setdefault("keepalives_idle", 5)
            params.setdefault("keepalives_interval", 2)
            params.setdefault("keepalives_count", 2)
            params.setdefault("tcp_user_timeout", 10_000)
            params.setdefault("connect_timeout", 5)
            self._pg = psycopg.connect(**params, autocommit=True)
        try:
            row = self._pg.execute(
                "SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY]
            ).fetchone()
        except Exception:  # noqa: BLE001 - a dead lock connection: a fresh one next time
            self.release()
            raise
        return bool(row[0])

    def still_held(self, timeout: float = 5.0) -> bool:
        """Whether this process still holds the lock; False when the check fails or hangs."""
        if self._file is not None:
            return True  # a file lock lives as long as our open file
        if self._pg is None:
            return False
        result: list[bool] = []

        def check() -> None:
            try:
                row = self._pg.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid()"
                ).fetchone()
                result.append(bool(row and row[0]))
            except Exception:  # noqa: BLE001 - any failure: the session (and lock) may be gone
                result.append(False)

        worker = threading.Thread(target=check, name="scheduler-lock-check", daemon=True)
        worker.start()
        worker.join(timeout)
        return bool(result and result[0])

    def _try_file(self) -> bool:
        path = Path(settings.DATABASES["default"]["NAME"]).with_suffix(".scheduler.lock")
        if self._file is None:
            self._file = open(path, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None
        if self._file is not None:
            self._file.close()
            self._file = None
