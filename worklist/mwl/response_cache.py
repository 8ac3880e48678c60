"""Encoded C-FIND response items kept between queries, keyed on what they were encoded from.

A broad worklist query (one modality, a week: thousands of matches) spent most of its time
turning each row into Python values (Django's converters: datetimes, JSON, decimals) and
encoding it as a DICOM identifier, although the same steps are asked for again and again by
every modality of that kind. Here the bytes of each response item are kept per step and per
*encoding*: the builder's signature (requested keys, character set, name profile, the settings
a getter reads) and the transfer syntax's VR and byte order.

An entry is valid only for the row it was encoded from: it carries the hash of the raw
database row (every column the item is built from, straight from the driver, before any
conversion), and a query whose row for that step differs in any column encodes it again. So
there is nothing to invalidate and nothing to miss: a change made by a service, a bulk
``update()``, another process (the web UI and the HL7 listener are other processes than the
DICOM listener, where a signal would not reach this memory) or by hand in the database is
seen by the very next query, because that query reads the row it answers from. What the cache
saves is the work after the SELECT, never the SELECT.

Python's 64-bit ``hash`` of the row tuple is the fingerprint: its string hashing is keyed per
process (PYTHONHASHSEED), so two versions of one step colliding is a 2^-64 chance per change,
not something a value can be chosen to cause.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from worklist.dicom import ResponseBuilder
from worklist.selectors import RawWorklistRows


class ResponseCache:
    """At most ``max_items`` encoded items; the oldest tenth is dropped when it is full."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: dict[tuple, tuple[int, bytes]] = {}
        self._lock = threading.Lock()  # writers only: a dict read is atomic under the GIL
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def encoder(
        self,
        builder: ResponseBuilder,
        rows: RawWorklistRows,
        *,
        implicit_vr: bool,
        little_endian: bool,
    ) -> Callable[[tuple], bytes]:
        """A function from one raw row of ``rows`` to its encoded identifier, from the cache
        when the same step was encoded from the same row the same way before."""
        signature = (builder.signature, implicit_vr, little_endian)
        items = self._items

        def encoded(raw: tuple) -> bytes:
            key = (signature, raw[0])  # raw[0]: the step's primary key (ROW_FIELDS["pk"])
            fingerprint = _fingerprint(raw)
            cached = items.get(key)
            if cached is not None and cached[0] == fingerprint:
                self.hits += 1
                return cached[1]
            self.misses += 1
            data = builder.encode(rows.row(raw), implicit_vr=implicit_vr,
                                  little_endian=little_endian)
            self._put(key, fingerprint, data)
            return data

        return encoded

    def _put(self, key: tuple, fingerprint: int, data: bytes) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            if key not in self._items and len(self._items) >= self.max_items:
                oldest = list(self._items)[: max(1, self.max_items // 10)]
                for old in oldest:
                    del self._items[old]
            self._items[key] = (fingerprint, data)


def _fingerprint(raw: tuple) -> int:
    try:
        return hash(raw)
    except TypeError:  # a driver that returns a list or dict for a column (JSON)
        return hash(repr(raw))
