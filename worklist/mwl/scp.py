"""Modality Worklist Information Model - FIND SCP (1.2.840.10008.5.1.4.31): a thin adapter.

Decode the identifier -> ``worklist.matching`` builds the one query -> ``worklist.selectors``
reads the rows -> ``worklist.dicom`` encodes each as a Pending response. What is decided here is
only DIMSE: statuses, Error Comments, C-CANCEL, the calling AE's Device (its character set, its
right to query, its restriction to its own steps) and the RIS_MWL_MAX_MATCHES limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pynetdicom.service_class as _service_class
from django.conf import settings
from django.db import DatabaseError
from prometheus_client import Histogram
from pydicom import Dataset
from pydicom import config as pydicom_config
from pynetdicom import evt
from pynetdicom.dsutils import encode as _pydicom_encode
from pynetdicom.sop_class import ModalityWorklistInformationFind

from worklist import selectors, services
from worklist.audit import Actor
from worklist.dicom import ResponseBuilder
from worklist.dimse import TRANSFER_SYNTAXES, decode_incoming, error_comment
from worklist.matching import MatchError, worklist_query
from worklist.models import Device
from worklist.mwl import dbthreads
from worklist.mwl.dimse_stream import PendingResponses, wait_until_sent
from worklist.mwl.outage import DATABASE_UNAVAILABLE, DatabaseOutage
from worklist.mwl.response_cache import ResponseCache
from worklist.selectors import RawWorklistRows

logger = logging.getLogger("ris.mwl")

PENDING = 0xFF00
PENDING_WARNING = 0xFF01  # one or more optional keys not supported (PS3.4 K.4.1.1.4)
CANCEL = 0xFE00
NOT_AUTHORISED = 0x0124
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000
#: PS3.4 C.4.1.1.4: Cxxx is "Failed: unable to process"; this one is ris's for an unreachable
#: database, so that a modality's log tells it apart from a query ris could not handle.
DATABASE_FAILURE = 0xC001

_outage = DatabaseOutage(logger, "worklist C-FIND")

#: From the C-FIND request to the last response handed to pynetdicom (GET /metrics).
CFIND_SECONDS = Histogram(
    "ris_mwl_cfind_seconds", "Worklist C-FIND handling time, request to final response",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class KnownAETitles(list):
    """``ae.require_calling_aet`` that reads the active Devices at each association request.

    pynetdicom rejects a calling AE title that is not in this list with A-ASSOCIATE-RJ
    (rejected-permanent, service-user, calling AE title not recognised); reading it live means a
    Device added in the web UI may connect without restarting the listener. During a database
    outage the last list read is used (an unknown-AE rejection is permanent: a modality might
    stop trying). ``also_allow`` adds titles that need no Device (ris's own health check).
    """

    def __init__(self) -> None:
        super().__init__()
        self._always: list[str] = []
        self._last: list[str] = []

    def also_allow(self, ae_title: str) -> None:
        self._always.append(ae_title)

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        try:
            self._last = selectors.known_ae_titles()
            _outage.succeeded()
        except DatabaseError as exc:
            _outage.failed(exc)
        return iter([*self._always, *self._last])


class EncodedIdentifier(Dataset):
    """A Pending identifier encoded straight to bytes by ``ResponseBuilder.encode`` when
    pynetdicom sends it (in the association's transfer syntax), skipping pydicom's writer.

    pydicom's encoding of each identifier is the largest cost of a broad query (docs/BENCHMARKS.md,
    "Modality Worklist SCP"). The bytes are identical to pydicom's (tests/mwl/test_encoding.py).
    """

    def __init__(
        self,
        builder: ResponseBuilder,
        row: dict | Callable[[], dict],
        ready: tuple[bool, bool, bytes] | None = None,
    ) -> None:
        super().__init__()
        self._ris_builder = builder
        self._ris_row = row
        # (implicit VR, little endian, bytes) from the response cache, for that transfer syntax
        self._ris_ready = ready

    def _row(self) -> dict:
        return self._ris_row() if callable(self._ris_row) else self._ris_row

    def as_dataset(self) -> Dataset:
        return self._ris_builder.dataset(self._row())

    def encoded(self, implicit_vr: bool, little_endian: bool) -> bytes:
        if self._ris_ready is not None and self._ris_ready[:2] == (implicit_vr, little_endian):
            return self._ris_ready[2]
        return self._ris_builder.encode(
            self._row(), implicit_vr=implicit_vr, little_endian=little_endian
        )


def _encode(ds, is_implicit_vr: bool, is_little_endian: bool, deflated: bool = False):
    if isinstance(ds, EncodedIdentifier):
        if deflated:
            return _pydicom_encode(ds.as_dataset(), is_implicit_vr, is_little_endian, True)
        try:
            return ds.encoded(is_implicit_vr, is_little_endian)
        except Exception:  # noqa: BLE001 - pynetdicom turns None into 0xC312 and logs it
            logger.exception("encoding a worklist response failed")
            return None
    return _pydicom_encode(ds, is_implicit_vr, is_little_endian, deflated)


def _install_fast_encoder() -> None:
    # pynetdicom's C-FIND loop calls service_class.encode(identifier, ...) for each Pending
    # response; this wrapper passes every other dataset to it unchanged.
    if getattr(_service_class, "encode", None) is _pydicom_encode:
        _service_class.encode = _encode


def register(ae) -> list:
    ae.add_supported_context(ModalityWorklistInformationFind, TRANSFER_SYNTAXES)
    # Wild cards make query values "invalid" for their VR (CS "C?"): pydicom would log a warning
    # for each. Query values are validated by worklist.matching, which answers A900H.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    if settings.RIS_DICOM_REQUIRE_KNOWN_AE:
        ae._require_calling_aet = KnownAETitles()
    if settings.RIS_MWL_FAST_ENCODING:
        _install_fast_encoder()
    return [(evt.EVT_C_FIND, handle_find)]


def _failure(status: int, comment: str, tag: int | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = error_comment(comment)
    if tag is not None:
        ds.OffendingElement = [tag]
    return ds


def _has_unsupported_keys(identifier: Dataset) -> bool:
    return bool(selectors.unsupported_keys(identifier))


def _decode_identifier(event, device: Device | None, calling_ae: str) -> Dataset:
    """The request identifier, its text read in the character set it is really in."""
    return decode_incoming(
        event,
        "Identifier",
        incoming=device.incoming_character_set if device is not None else "",
        calling_ae=calling_ae,
    )


def _rows(query, limit: int | None) -> list[dict]:
    return list(selectors.worklist_rows(query, limit=limit))


_response_cache: ResponseCache | None = None
_response_cache_lock = threading.Lock()


def response_cache() -> ResponseCache | None:
    """The process's cache of encoded response items (None: RIS_MWL_RESPONSE_CACHE_ITEMS is 0,
    or RIS_MWL_FAST_ENCODING is off)."""
    global _response_cache
    size = settings.RIS_MWL_RESPONSE_CACHE_ITEMS if settings.RIS_MWL_FAST_ENCODING else 0
    if size <= 0:
        return None
    with _response_cache_lock:
        if _response_cache is None:
            _response_cache = ResponseCache(size)
        _response_cache.max_items = size
        return _response_cache


def handle_find(event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """EVT_C_FIND: yield one Pending response per matching step, then pynetdicom ends with
    Success (or the failure/cancel status yielded here). Timed into ``CFIND_SECONDS``."""
    started = time.perf_counter()
    try:
        yield from _handle_find(event)
    finally:
        CFIND_SECONDS.observe(time.perf_counter() - started)


def _handle_find(event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    try:
        device = dbthreads.run(selectors.device_for_ae, calling_ae)
    except DatabaseError as exc:
        _outage.failed(exc)
        yield _failure(DATABASE_FAILURE, DATABASE_UNAVAILABLE), None
        return
    if device is not None and not device.may_query_worklist:
        yield _failure(NOT_AUTHORISED, f"{calling_ae} may not query the worklist"), None
        return
    try:
        identifier = _decode_identifier(event, device, calling_ae)
        list(identifier)  # decode now, so that a broken identifier fails here
    except Exception as exc:  # noqa: BLE001 - a malformed identifier is the peer's error
        logger.warning("undecodable C-FIND identifier from %s: %s", calling_ae, exc)
        yield _failure(UNABLE_TO_PROCESS, "the identifier could not be decoded"), None
        return
    station = calling_ae if device is not None and device.restrict_to_own_steps else None
    charset = device.character_set if device is not None else None
    cache = response_cache()
    try:
        query = worklist_query(identifier, station_ae=station)
        builder = ResponseBuilder(
            identifier,
            character_set=charset or settings.RIS_MWL_DEFAULT_CHARACTER_SET,
            name_profile=device.name_profile if device is not None else "",
        )
        limit = settings.RIS_MWL_MAX_MATCHES
        read_at_most = limit + 1 if limit else None
        if cache is None:
            rows = dbthreads.run(_rows, query, read_at_most)
        else:  # only the columns of the requested keys, unconverted
            rows = dbthreads.run(selectors.worklist_raw_rows, query, limit=read_at_most,
                                 columns=builder.columns)
    except MatchError as exc:
        # The reason may quote a value of the identifier (a birth date, a name): the Error
        # Comment tells the modality; the log above DEBUG names the attribute only.
        where = f"({exc.tag >> 16:04X},{exc.tag & 0xFFFF:04X})" if exc.tag else "the identifier"
        logger.info("refused C-FIND from %s: %s cannot be matched", calling_ae, where)
        logger.debug("refused C-FIND from %s: %s", calling_ae, exc)
        yield _failure(IDENTIFIER_DOES_NOT_MATCH, str(exc), exc.tag), None
        return
    except DatabaseError as exc:
        _outage.failed(exc)
        yield _failure(DATABASE_FAILURE, DATABASE_UNAVAILABLE), None
        return
    except Exception:  # noqa: BLE001 - reported to the modality, logged for the operator
        logger.exception("worklist query from %s failed", calling_ae)
        yield _failure(UNABLE_TO_PROCESS, "the worklist could not be read"), None
        return
    _outage.succeeded()
    _audit_query(event, calling_ae, device, identifier, len(rows))
    if limit and len(rows) > limit:
        yield _failure(OUT_OF_RESOURCES, f"more than {limit} matches: narrow the query"), None
        return
    pending = PENDING_WARNING if _has_unsupported_keys(identifier) else PENDING
    fast = settings.RIS_MWL_FAST_ENCODING
    ts = event.context.transfer_syntax
    implicit, little = ts.is_implicit_VR, ts.is_little_endian
    if cache is not None:
        raw_rows: RawWorklistRows = rows
        encode = cache.encoder(builder, raw_rows, implicit_vr=implicit, little_endian=little)
        items: list = raw_rows.raw
    else:
        def encode(row: dict) -> bytes:
            return builder.encode(row, implicit_vr=implicit, little_endian=little)

        items = rows
    direct = items and fast and settings.RIS_MWL_DIRECT_SEND
    stream = PendingResponses.open(event, pending) if direct else None
    if stream is not None:
        yield from _send_directly(event, stream, encode, items)
        return
    for item in items:
        wait_until_sent(event.assoc)  # one response in flight: C-CANCEL is read in between
        if event.is_cancelled:
            yield CANCEL, None
            return
        if cache is not None:
            ready = None if ts.is_deflated else (implicit, little, encode(item))
            yield pending, EncodedIdentifier(builder, partial(raw_rows.row, item), ready)
        else:
            yield pending, EncodedIdentifier(builder, item) if fast else builder.dataset(item)


def _query_keys(identifier: Dataset) -> dict[str, str]:
    """The keys a query matched on (those with a value), as text, sequence items flattened."""
    keys: dict[str, str] = {}
    for elem in identifier:
        if elem.VR == "SQ":
            for item in elem.value or []:
                keys.update(_query_keys(item))
        elif elem.value not in (None, "") and elem.keyword != "SpecificCharacterSet":
            keys[elem.keyword or str(elem.tag)] = str(elem.value)[:200]
    return keys


def _audit_query(event, calling_ae: str, device, identifier: Dataset, matches: int) -> None:
    peer = event.assoc.requestor.address_info
    try:
        keys = _query_keys(identifier)
    except Exception:  # noqa: BLE001 - the audit row must not fail the query
        keys = {}
    dbthreads.submit(
        services.worklist_queried,
        actor=Actor.ae(calling_ae),
        device=device.ae_title if device is not None else f"{calling_ae} (no device)",
        keys=keys,
        matches=matches,
        peer=f"{peer.address}:{peer.port}",
    )


def _send_directly(event, stream: PendingResponses, encode: Callable[[Any], bytes], items: list):
    """The Pending responses in batches on the socket (worklist.mwl.dimse_stream), then the final
    status through pynetdicom. The DUL thread keeps reading meanwhile, so a C-CANCEL is seen between
    two responses. ``encode`` turns one of ``items`` (a row, or a raw row for the response cache)
    into its identifier's bytes in the association's transfer syntax."""
    for item in items:
        if event.is_cancelled:
            stream.flush()
            yield CANCEL, None
            return
        try:
            encoded = encode(item)
        except Exception:  # noqa: BLE001 - reported to the modality, logged for the operator
            logger.exception("encoding a worklist response failed")
            stream.flush()
            yield _failure(UNABLE_TO_PROCESS, "a worklist item could not be encoded"), None
            return
        stream.add(encoded)
        if stream.failed:
            event.assoc.abort()
            return
    stream.flush()
    if stream.failed:
        event.assoc.abort()
