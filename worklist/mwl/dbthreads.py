"""A few long-lived threads that run DIMSE handlers' database reads on connections they keep.

pynetdicom runs each association in a new thread, and a Django connection belongs to its thread,
so every association opened a database connection and closed it again at the end
(``ris.dicom_server._close_db_connection``). On PostgreSQL that is a new server process per
association, about 10 ms of a 25-35 ms worklist query on the benchmark machine; on SQLite a file
open plus the connection's PRAGMAs, about 2 ms. Reads submitted here run on threads whose
connection outlives the association. Writes stay in the association's thread and transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

T = TypeVar("T")


class KeptConnections:
    """``size`` threads, each with the Django connection it opened on its first read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="ris-db")

    def run(self, read: Callable[..., T], /, *args, **kwargs) -> T:
        """``read(*args, **kwargs)`` on one of the threads; it must finish its queries before it
        returns (lists, not querysets)."""
        return self._executor.submit(_on_kept_connection, read, args, kwargs).result()

    def close(self) -> None:
        """Close every thread's connection (in that thread) and stop the threads."""
        everyone = threading.Barrier(self.size)

        def close_here() -> None:
            everyone.wait(timeout=10)  # one task per thread: each closes its own connection
            connection.close()

        wait([self._executor.submit(close_here) for _ in range(self.size)])
        self._executor.shutdown()


def _on_kept_connection(read: Callable[..., T], args: tuple, kwargs: dict) -> T:
    try:
        return read(*args, **kwargs)
    except (InterfaceError, OperationalError):
        # A kept connection may have died with the database server: reconnect once. Only reads
        # run here, so running one again changes nothing.
        connection.close()
        return read(*args, **kwargs)


_default: KeptConnections | None = None
_lock = threading.Lock()


def run(read: Callable[..., T], /, *args, **kwargs) -> T:
    """``read`` on the process's kept connections, or inline when RIS_DICOM_DB_THREADS is 0."""
    global _default
    if settings.RIS_DICOM_DB_THREADS <= 0:
        return read(*args, **kwargs)
    if _default is None:
        with _lock:
            if _default is None:
                _default = KeptConnections(settings.RIS_DICOM_DB_THREADS)
    return _default.run(read, *args, **kwargs)
