"""What every benchmark script needs: a free port, a fresh database, a ``ris serve`` to wait for.

Each run gets its own SQLite file in a temporary data directory, or its own PostgreSQL database
(``ris_bench_<label>_<pid>``) created from the URL given and dropped at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_database(url: str, label: str) -> tuple[str, str]:
    """(DATABASE_URL to use, data dir): an empty database for this run."""
    data_dir = tempfile.mkdtemp(prefix=f"ris-bench-{label}-")
    if not url or url.startswith("sqlite"):
        return f"sqlite:///{data_dir}/bench.sqlite3", data_dir
    import psycopg

    name = f"ris_bench_{label}_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}", data_dir


def drop_database(url: str, admin_url: str) -> None:
    if url.startswith("postgresql"):
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def port_open(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    return check


def start_serve(env: dict[str, str], only: str, ready: Callable[[], bool], what: str,
                timeout: float = 90) -> subprocess.Popen:
    """``ris serve --only <only>`` (log in RIS_DATA_DIR/serve.log), once ``ready()`` is true."""
    log = open(Path(env["RIS_DATA_DIR"]) / "serve.log", "ab")  # noqa: SIM115 - the process's
    process = subprocess.Popen(
        [sys.executable, "-m", "ris.cli", "serve", "--only", only],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return process
        time.sleep(0.3)
    process.kill()
    raise SystemExit(f"ris serve did not {what}")
