"""One log line per database outage and listener, not one traceback per request.

During an outage every modality keeps polling the worklist: logging each failed query with its
traceback buried the log (117 tracebacks in 30 s). The first failure is logged once with the
driver's error text, the recovery once again; the requests in between are answered (with an
explicit DIMSE failure status) but not logged above DEBUG.
"""

from __future__ import annotations

import logging
import threading

#: The Error Comment (0000,0902) of a request refused because the database cannot be reached.
DATABASE_UNAVAILABLE = "database unavailable"


class DatabaseOutage:
    """The database state one listener has seen; ``failed``/``succeeded`` log only transitions."""

    def __init__(self, logger: logging.Logger, listener: str) -> None:
        self._logger = logger
        self._listener = listener
        self._lock = threading.Lock()
        self._down = False
        self._failures = 0

    @property
    def is_down(self) -> bool:
        return self._down

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            first = not self._down
            self._down = True
        if first:
            self._logger.error("%s: database unavailable (%s: %s); answering requests with "
                               "failures until it is back", self._listener,
                               type(exc).__name__, (str(exc).strip().splitlines() or [''])[0])
        else:
            self._logger.debug("%s: database still unavailable: %s", self._listener, exc)

    def succeeded(self) -> None:
        if not self._down:  # the common case: no lock
            return
        with self._lock:
            if not self._down:
                return
            self._down, failures, self._failures = False, self._failures, 0
        self._logger.warning("%s: database available again (%d requests refused meanwhile)",
                             self._listener, failures)
