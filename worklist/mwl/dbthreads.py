"""A few long-lived threads that run DIMSE handlers' database reads on connections they keep.

pynetdicom runs each association in a new thread, and a Django connection belongs to its thread,
so every association opened a database connection and closed it again at the end
(``ris.dicom_server._close_db_connection``). On PostgreSQL that is a new server process per
association, about 10 ms of a 25-35 ms worklist query on the benchmark machine; on SQLite a file
open plus the connection's PRAGMAs, about 2 ms. Reads submitted here run on threads whose
connection outlives the association. Writes stay in the association's thread and transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

T = TypeVar("T")
logger = logging.getLogger("ris.dicom")


class KeptConnections:
    """``size`` threads, each with the Django connection it opened on its first read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="ris-db")

    def run(self, read: Callable[..., T], /, *args, **kwargs) -> T:
        """``read(*args, **kwargs)`` on one of the threads; it must finish its queries before it
        returns (lists, not querysets)."""
        return self._executor.submit(_on_kept_connection, read, args, kwargs).result()

    def submit(self, work: Callable[..., object], /, *args, **kwargs) -> None:
        """``work`` on one of the threads, without waiting for it (an audit row: the modality
        need not wait for it, and a failure is logged, not answered)."""
        self._executor.submit(_logged, work, args, kwargs)

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


def _logged(work: Callable[..., object], args: tuple, kwargs: dict) -> None:
    try:
        _on_kept_connection(work, args, kwargs)
    except Exception:  # noqa: BLE001 - nobody waits for this result
        logger.exception("background database write failed")


_default: KeptConnections | None = None
_lock = threading.Lock()


def _pool() -> KeptConnections:
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = KeptConnections(settings.RIS_DICOM_DB_THREADS)
    return _default


def run(read: Callable[..., T], /, *args, **kwargs) -> T:
    """``read`` on the process's kept connections, or inline when RIS_DICOM_DB_THREADS is 0."""
    if settings.RIS_DICOM_DB_THREADS <= 0:
        return read(*args, **kwargs)
    return _pool().run(read, *args, **kwargs)


def submit(work: Callable[..., object], /, *args, **kwargs) -> None:
    """``work`` in the background on the kept connections (inline when there are none)."""
    if settings.RIS_DICOM_DB_THREADS <= 0:
        _logged(work, args, kwargs)
        return
    _pool().submit(work, *args, **kwargs)
