"""Running a real ``ris serve`` as a subprocess, on free ports, against the test database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from django.db import connection

#: Scheduler and queue timings for tests. Every ``ris serve`` of a session gets them: they share
#: one database, so whichever leads the scheduler runs every test's jobs.
TEST_TIMINGS = {
    "RIS_SCHEDULER_HEARTBEAT_SECONDS": "2",
    "RIS_OUTBOUND_POLL_SECONDS": "1",
    "RIS_UPS_EVENTS_POLL_MS": "200",
    "RIS_OUTBOUND_BACKOFF_MS": "300",
    "RIS_OUTBOUND_BACKOFF_MAX_MS": "1000",
    "RIS_OUTBOUND_LEASE_SECONDS": "3",
    "RIS_PACS_AVAILABILITY_SECONDS": "1",
    "RIS_FORWARD_UPKEEP_SECONDS": "1",
    "RIS_FORWARD_COMMIT_TIMEOUT_SECONDS": "6",
    "RIS_FORWARD_BATCH_SIZE": "8",
    # Steps that follow the images: a study is stable after 4 s without a new instance (the
    # images-workflow tests need it from whichever server leads the scheduler).
    "RIS_STUDY_STABLE_SECONDS": "4",
    "RIS_STUDY_STABLE_CHECK_SECONDS": "1",
}


#: Listening ports for test servers come from below the kernel's ephemeral range
#: (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 on Linux): a port from ``bind(0)`` is
#: free when handed out, but an outgoing connection (to PostgreSQL, Orthanc, a test's own
#: client) may take it as its source port before the server binds, and the listener then fails
#: with EADDRINUSE. Each pytest-xdist worker gets its own slice, so workers never race for one.
_PORT_FIRST, _PORT_SLICE = 20000, 3000
_next_port: list[int] = []


def free_port() -> int:
    if not _next_port:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
        first = _PORT_FIRST + (int(worker) % 4 if worker.isdigit() else 0) * _PORT_SLICE
        # another pytest run on the machine (a second checkout) starts elsewhere in the slice
        _next_port.extend([first, first + (os.getpid() * 7) % _PORT_SLICE])
    first, port = _next_port
    for _ in range(_PORT_SLICE):
        port = first + (port + 1 - first) % _PORT_SLICE
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _next_port[1] = port
        return port
    raise RuntimeError(f"no free port in {first}-{first + _PORT_SLICE - 1}")


def test_database_url() -> str:
    """The URL of the database pytest-django created, so the child serves the test data."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or ""
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/{params['NAME']}"


@dataclass
class RisService:
    #: set once per test session by tests/conftest.py
    shared_spool: ClassVar[Path | None] = None
    #: ris's client certificate for PACS destinations over TLS (tests/conftest.py)
    pacs_tls_env: ClassVar[dict[str, str]] = {}
    data_dir: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    mllp_port: int = field(default_factory=free_port)
    events_port: int = field(default_factory=free_port)
    ae_title: str = "RIS"
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def spool_dir(self) -> Path:
        """The gateway spool. Every ``ris serve`` of a test session shares one, as ris processes
        that share a database must share the spool in production: whichever process leads the
        scheduler sends what another one received."""
        return RisService.shared_spool or self.data_dir / "spool"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "RIS_DATA_DIR": str(self.data_dir),
                "DATABASE_URL": self.database_url,
                "RIS_HTTP": f"127.0.0.1:{self.http_port}",
                "RIS_DICOM_PORT": str(self.dicom_port),
                "RIS_DICOM_HOST": "127.0.0.1",
                "RIS_MLLP_PORT": str(self.mllp_port),
                "RIS_MLLP_HOST": "127.0.0.1",
                "RIS_UPS_EVENTS_HTTP": f"127.0.0.1:{self.events_port}",
                "RIS_AE_TITLE": self.ae_title,
                "RIS_ADMIN_PASSWORD": "admin-test-password",
                "RIS_FORWARD_SPOOL_DIR": str(self.spool_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(TEST_TIMINGS)
        env.update(RisService.pacs_tls_env)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.update(self.extra_env)
        return env

    def start(self, *args: str) -> RisService:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "serve.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ris.cli", "serve", *args],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def wait_healthy(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"ris serve exited with {code}:\n{self.log()}")
            try:
                status, report = self.health()
                if status == 200:
                    return report
                last = report
            except OSError as exc:
                last = exc
            time.sleep(0.3)
        raise TimeoutError(f"ris serve not healthy after {timeout}s: {last}\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
