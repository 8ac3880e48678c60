"""``ris serve``: migrate, then supervise one child process per listener."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection

from ris.listeners import add_listener_arguments, override_settings_from_options

logger = logging.getLogger("ris.serve")

LISTENERS = ("web", "dicom", "mllp", "scheduler", "events")
#: Listeners that may run as several processes on one port (SO_REUSEPORT), and how many.
_PROCESSES = {
    "dicom": lambda: settings.RIS_DICOM_PROCESSES,
    "mllp": lambda: settings.RIS_MLLP_PROCESSES,
}
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the supervisor dies, even by kill -9.

    Otherwise orphaned listeners keep the ports and the scheduler lock, and a restarted
    ``ris serve`` cannot start its own.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the supervisor's own signal handling still stops children
RESTART_BACKOFF_MAX = 30.0
#: Arbitrary, stable key of the PostgreSQL advisory lock that serialises start-up (see below).
STARTUP_LOCK_KEY = 0x7269735F73747274


@contextlib.contextmanager
def _startup_lock():
    """One ``ris serve`` at a time migrates and creates the first admin on a shared database.

    Several processes sharing one PostgreSQL (scale-out behind a load balancer) often start
    together: without this, two would apply the same migration or both create ``admin``, and the
    loser would exit with an IntegrityError. On SQLite a lock file beside the database does the
    same for processes of one host.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [STARTUP_LOCK_KEY])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [STARTUP_LOCK_KEY])
        return
    path = Path(settings.DATABASES["default"]["NAME"]).with_suffix(".startup.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


class Command(BaseCommand):
    help = (
        "Run every ris listener (web, DICOM, HL7 MLLP, scheduler, UPS events) in supervised "
        "children."
    )

    def add_arguments(self, parser):
        add_listener_arguments(parser)
        parser.add_argument("--demo", action="store_true", help="load demo data first")
        parser.add_argument(
            "--only",
            default=",".join(LISTENERS),
            help="comma-separated listeners to run (default: all)",
        )

    def handle(self, *args, **options):
        override_settings_from_options(options)
        listeners = [name for name in options["only"].split(",") if name]
        unknown = set(listeners) - set(LISTENERS)
        if unknown:
            self.stderr.write(f"unknown listener(s): {', '.join(sorted(unknown))}")
            sys.exit(2)
        with _startup_lock():
            call_command("migrate", interactive=False, verbosity=0)
            self._ensure_admin()
            if options["demo"]:
                call_command("demo")
        _application_activity("ris.start", listeners)
        connection.close()
        env = self._child_environment(listeners)
        _fresh_metrics_directory(Path(env["PROMETHEUS_MULTIPROC_DIR"]))
        Supervisor(listeners, env, self.stdout).run()
        _application_activity("ris.stop", listeners)

    def _child_environment(self, listeners: list[str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "ris.settings"),
                "RIS_HTTP": str(settings.RIS_HTTP),
                "RIS_DICOM_PORT": str(settings.RIS_DICOM_PORT),
                "RIS_AE_TITLE": str(settings.RIS_AE_TITLE),
                "RIS_MLLP_PORT": str(settings.RIS_MLLP_PORT),
                "RIS_UPS_EVENTS_HTTP": str(settings.RIS_UPS_EVENTS_HTTP),
                "RIS_DATA_DIR": str(settings.DATA_DIR),
                "RIS_SECRET_KEY": settings.SECRET_KEY,
                "RIS_LISTENERS": ",".join(name for name in listeners if name != "web"),
                "PYTHONUNBUFFERED": "1",
                # prometheus-client's multiprocess mode: every child writes its measurements
                # here, the web workers' GET /metrics merges them (ris.metrics)
                "PROMETHEUS_MULTIPROC_DIR": os.environ.get(
                    "PROMETHEUS_MULTIPROC_DIR", str(settings.DATA_DIR / "prometheus")
                ),
            }
        )
        return env

    def _ensure_admin(self) -> None:
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        password = os.environ.get("RIS_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        users.objects.create_superuser("admin", "", password)
        if os.environ.get("RIS_ADMIN_PASSWORD"):
            self.stdout.write("admin account 'admin' created with RIS_ADMIN_PASSWORD")
        else:
            self.stdout.write(
                f"admin account 'admin' created; one-time password: {password} "
                "(shown once: change it after logging in)"
            )


class Supervisor:
    """Starts each listener as ``ris <listener>``, restarts one that dies, stops all on SIGTERM."""

    def __init__(self, listeners: list[str], env: dict[str, str], out) -> None:
        self.listeners = listeners
        self.env = env
        self.out = out
        self.children: dict[str, subprocess.Popen] = {}
        self.failures: dict[str, int] = {}
        self.stopping = False

    def _spawn(self, name: str) -> None:
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "ris.cli", name.partition("#")[0]],
            env=self.env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.stopping = True

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for name in self.listeners:
            self._spawn(name)
            # RIS_DICOM_PROCESSES, RIS_MLLP_PROCESSES: more on the same port, "dicom#2", ...
            for number in range(2, _PROCESSES.get(name, lambda: 1)() + 1):
                self._spawn(f"{name}#{number}")
        next_restart: dict[str, float] = {}
        while not self.stopping:
            time.sleep(0.2)
            for name, child in list(self.children.items()):
                code = child.poll()
                if code is None or self.stopping:
                    continue
                now = time.monotonic()
                if name not in next_restart:
                    self.failures[name] = self.failures.get(name, 0) + 1
                    delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** (self.failures[name] - 1))
                    self.out.write(f"{name} exited with {code}; restarting in {delay:.1f}s")
                    next_restart[name] = now + delay
                elif now >= next_restart[name]:
                    del next_restart[name]
                    self._spawn(name)
        self._stop_children()

    def _stop_children(self, grace: float = 8.0) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children.values():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.wait(remaining)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.out.write("ris stopped")


def _application_activity(action: str, listeners: list[str]) -> None:
    """Audit the start and stop of this ris (ATNA Application Activity, PS3.15 A.5.3.1): a gap
    in a repository's record of a node is only visible if its stops are recorded too."""
    from worklist.audit import Actor, record_access

    try:
        record_access(Actor.system(), action, object_type="ris.application",
                      object_id=f"{socket.gethostname()}:{os.getpid()}"[:64],
                      detail=", ".join(listeners or LISTENERS))
    except DatabaseError:
        logger.warning("could not audit %s (database unavailable)", action)
    finally:
        connection.close()


def _fresh_metrics_directory(path: Path) -> None:
    """Empty at each start, as prometheus-client's multiprocess mode requires (the files of a
    previous run's processes would be counted again)."""
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.db"):
        leftover.unlink()
