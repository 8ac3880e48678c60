"""A scratch PostgreSQL database of a test's own, on the server at 127.0.0.1:5432 (trust).

For the tests whose subject is PostgreSQL itself (an outage, a killed backend): they run on either
leg of the suite and skip cleanly when no server is reachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

HOST = os.environ.get("RIS_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("RIS_TEST_PG_PORT", "5432"))
USER = os.environ.get("RIS_TEST_PG_USER", "postgres")


def admin_connection(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host=HOST, port=PORT, user=USER, dbname=dbname, autocommit=True,
                           connect_timeout=3)


def require_postgresql() -> None:
    try:
        admin_connection().close()
    except Exception as exc:  # noqa: BLE001 - any failure: no server to test against
        pytest.skip(f"no PostgreSQL at {HOST}:{PORT}: {exc}")


@contextmanager
def scratch_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it (with whatever still connects to it)."""
    require_postgresql()
    name = f"ris_scratch_{uuid.uuid4().hex[:12]}"
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{USER}@{HOST}:{PORT}/{name}"
    finally:
        with admin_connection() as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def cut_off(name: str) -> None:
    """A database outage as the application sees one: existing sessions killed, new ones refused."""
    with admin_connection() as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", [name])


def restore(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
