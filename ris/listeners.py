"""What the listener children share: graceful stop on SIGTERM/SIGINT and settings overrides."""

from __future__ import annotations

import os
import signal
import sys
import threading

from django.conf import settings


class StopFlag:
    """Set by SIGTERM or SIGINT; the listener's main loop waits on it and then drains."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.event.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)

    @property
    def is_set(self) -> bool:
        return self.event.is_set()


def exit_now(code: int = 0) -> None:
    """Leave at once once a listener has drained.

    Interpreter teardown joins every non-daemon thread (APScheduler's pool, asyncio's executor)
    and collects a large heap: seconds on a loaded machine, which would break the 10 s stop
    promise of ``ris serve``. All work is committed or handed back to the queue by now.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def split_host_port(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host or default_host), int(port)


def override_settings_from_options(options: dict) -> None:
    """Command-line flags of ``manage.py <listener>`` win over the environment."""
    mapping = {
        "http": "RIS_HTTP",
        "dicom_port": "RIS_DICOM_PORT",
        "ae_title": "RIS_AE_TITLE",
        "mllp_port": "RIS_MLLP_PORT",
    }
    for option, setting in mapping.items():
        value = options.get(option)
        if value not in (None, ""):
            setattr(settings, setting, value)


def add_listener_arguments(parser) -> None:
    parser.add_argument("--http", help="HTTP address host:port (RIS_HTTP)")
    parser.add_argument("--dicom-port", type=int, help="DICOM port (RIS_DICOM_PORT)")
    parser.add_argument("--ae-title", help="DICOM AE title (RIS_AE_TITLE)")
    parser.add_argument("--mllp-port", type=int, help="HL7 MLLP port (RIS_MLLP_PORT)")
