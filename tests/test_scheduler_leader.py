"""One scheduler leader per database, also when the leader's lock session dies under it: two
``ris scheduler`` processes on a scratch PostgreSQL database, the leader's advisory-lock backend
killed with pg_terminate_backend, and exactly one leader afterwards (the old one stood down).
Skipped when no PostgreSQL is reachable (the SQLite leader's file lock has no such failure)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ris.scheduler import ADVISORY_LOCK_KEY
from tests.pg import admin_connection, database_name, scratch_database

LOW_32 = ADVISORY_LOCK_KEY & 0xFFFFFFFF


def _lock_holders(name: str) -> list[int]:
    with admin_connection(name) as conn:
        rows = conn.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s AND a.datname = %s",
            [LOW_32, name],
        ).fetchall()
    return [row[0] for row in rows]


def _scheduler(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ris.cli", "scheduler", "--standby-poll", "0.5"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _states(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if line.startswith("scheduler ")]


@pytest.fixture
def database(tmp_path):
    with scratch_database() as url:
        env = {**os.environ, "DATABASE_URL": url, "RIS_DATA_DIR": str(tmp_path),
               "RIS_SCHEDULER_LOCK_CHECK_SECONDS": "1", "RIS_SCHEDULER_HEARTBEAT_SECONDS": "1",
               "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        subprocess.run([sys.executable, "-m", "ris.cli", "migrate", "--verbosity", "0"],
                       env=env, check=True, timeout=300)
        yield url, env


def test_a_leader_whose_lock_session_is_killed_stands_down_and_one_leader_remains(
    database, tmp_path
):
    url, env = database
    name = database_name(url)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    first = _scheduler(env, logs[0])
    processes = [first]
    try:
        _wait(lambda: "scheduler leader" in logs[0].read_text(errors="replace"), 60, "a leader")
        processes.append(_scheduler(env, logs[1]))
        _wait(lambda: logs[1].exists() and "scheduler standby" in logs[1].read_text(), 60,
              "a standby")
        (holder,) = _lock_holders(name)

        with admin_connection() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", [holder])

        _wait(lambda: "scheduler lost its lock" in logs[0].read_text(), 15, "the old leader")
        _wait(lambda: "scheduler leader" in logs[1].read_text(), 15, "the standby to lead")
        time.sleep(3)  # the old leader may try again: it must find the lock taken
        assert len(_lock_holders(name)) == 1
        assert _states(logs[0])[-1].startswith("scheduler standby"), _states(logs[0])
        assert _states(logs[1])[-1].startswith("scheduler leader"), _states(logs[1])
        assert all(process.poll() is None for process in processes)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
