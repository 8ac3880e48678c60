"""Modality Worklist Information Model - FIND SCP (1.2.840.10008.5.1.4.31): a thin adapter.

Decode the identifier -> ``worklist.matching`` builds the one query -> ``worklist.selectors``
reads the rows -> ``worklist.dicom`` encodes each as a Pending response. What is decided here is
only DIMSE: statuses, Error Comments, C-CANCEL, the calling AE's Device (its character set, its
right to query, its restriction to its own steps) and the RIS_MWL_MAX_MATCHES limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from io import BytesIO

import pynetdicom.service_class as _service_class
from django.conf import settings
from pydicom import Dataset
from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR
from pynetdicom import evt
from pynetdicom.dsutils import decode
from pynetdicom.dsutils import encode as _pydicom_encode
from pynetdicom.sop_class import ModalityWorklistInformationFind

from worklist import selectors
from worklist.dicom import ResponseBuilder
from worklist.dimse import TRANSFER_SYNTAXES
from worklist.matching import MatchError, worklist_query
from worklist.mwl import dbthreads
from worklist.mwl.dimse_stream import PendingResponses, wait_until_sent

logger = logging.getLogger("ris.mwl")

PENDING = 0xFF00
PENDING_WARNING = 0xFF01  # one or more optional keys not supported (PS3.4 K.4.1.1.4)
CANCEL = 0xFE00
NOT_AUTHORISED = 0x0124
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000


class KnownAETitles(list):
    """``ae.require_calling_aet`` that reads the active Devices at each association request.

    pynetdicom rejects a calling AE title that is not in this list with A-ASSOCIATE-RJ
    (rejected-permanent, service-user, calling AE title not recognised); reading it live means a
    Device added in the web UI may connect without restarting the listener.
    """

    def __bool__(self) -> bool:
        return True

    def __iter__(self):
        return iter(selectors.known_ae_titles())


class EncodedIdentifier(Dataset):
    """A Pending identifier encoded straight to bytes by ``ResponseBuilder.encode`` when
    pynetdicom sends it (in the association's transfer syntax), skipping pydicom's writer.

    pydicom's encoding of each identifier is the largest cost of a broad query (docs/BENCHMARKS.md,
    "Modality Worklist SCP"). The bytes are identical to pydicom's (tests/mwl/test_encoding.py).
    """

    def __init__(self, builder: ResponseBuilder, row: dict) -> None:
        super().__init__()
        self._ris_builder = builder
        self._ris_row = row

    def as_dataset(self) -> Dataset:
        return self._ris_builder.dataset(self._ris_row)

    def encoded(self, implicit_vr: bool, little_endian: bool) -> bytes:
        return self._ris_builder.encode(
            self._ris_row, implicit_vr=implicit_vr, little_endian=little_endian
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
    ds.ErrorComment = comment[:64]
    if tag is not None:
        ds.OffendingElement = [tag]
    return ds


def _has_unsupported_keys(identifier: Dataset) -> bool:
    return bool(selectors.unsupported_keys(identifier))


_TEXT_VRS = {"SH", "LO", "ST", "LT", "UC", "UT", "PN"}


def _raw_text_values(ds: Dataset):
    for elem in ds.elements():
        vr = elem.VR
        if vr is None:  # implicit VR transfer syntax: the dictionary knows it
            try:
                vr = dictionary_VR(elem.tag)
            except KeyError:
                continue
        if vr == "SQ":
            for item in ds[elem.tag].value or []:
                yield from _raw_text_values(item)
        elif vr in _TEXT_VRS and isinstance(elem.value, bytes):
            yield elem.value


def unlabelled_character_set(identifier: Dataset) -> str | None:
    """The set the text of an identifier without (0008,0005) is really in, if not ASCII.

    Such a query is malformed (the default repertoire is ASCII), yet modalities configured for
    UTF-8 send it: valid UTF-8 is read as UTF-8, anything else as Latin-1, never as mojibake.
    """
    if "SpecificCharacterSet" in identifier:
        return None
    values = [v for v in _raw_text_values(identifier) if not v.isascii()]
    if not values:
        return None
    try:
        for value in values:
            value.decode("utf-8")
    except UnicodeDecodeError:
        return "ISO_IR 100"
    return "ISO_IR 192"


def _decode_identifier(event) -> Dataset:
    """The request identifier, its text read in the character set it is really in."""
    identifier = event.identifier
    charset = unlabelled_character_set(identifier)
    if charset is None:
        return identifier
    raw = event.request.Identifier.getvalue()
    ts = event.context.transfer_syntax
    label = Dataset()
    label.SpecificCharacterSet = charset
    first = next(iter(identifier.keys()), None)
    if first is not None and first < 0x00080005:
        return identifier  # (0008,0001-4) first: no room for a label, read it as it came
    labelled = _pydicom_encode(label, ts.is_implicit_VR, ts.is_little_endian) + raw
    return decode(BytesIO(labelled), ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)


def _rows(query, limit: int | None) -> list[dict]:
    return list(selectors.worklist_rows(query, limit=limit))


def handle_find(event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
    """EVT_C_FIND: yield one Pending response per matching step, then pynetdicom ends with
    Success (or the failure/cancel status yielded here)."""
    calling_ae = str(event.assoc.requestor.ae_title).strip()
    device = dbthreads.run(selectors.device_for_ae, calling_ae)
    if device is not None and not device.may_query_worklist:
        yield _failure(NOT_AUTHORISED, f"{calling_ae} may not query the worklist"), None
        return
    try:
        identifier = _decode_identifier(event)
        list(identifier)  # decode now, so that a broken identifier fails here
    except Exception as exc:  # noqa: BLE001 - a malformed identifier is the peer's error
        logger.warning("undecodable C-FIND identifier from %s: %s", calling_ae, exc)
        yield _failure(UNABLE_TO_PROCESS, "the identifier could not be decoded"), None
        return
    station = calling_ae if device is not None and device.restrict_to_own_steps else None
    try:
        query = worklist_query(identifier, station_ae=station)
        limit = settings.RIS_MWL_MAX_MATCHES
        rows = dbthreads.run(_rows, query, limit + 1 if limit else None)
    except MatchError as exc:
        logger.info("refused C-FIND from %s: %s", calling_ae, exc)
        yield _failure(IDENTIFIER_DOES_NOT_MATCH, str(exc), exc.tag), None
        return
    except Exception:  # noqa: BLE001 - reported to the modality, logged for the operator
        logger.exception("worklist query from %s failed", calling_ae)
        yield _failure(UNABLE_TO_PROCESS, "the worklist could not be read"), None
        return
    if limit and len(rows) > limit:
        yield _failure(OUT_OF_RESOURCES, f"more than {limit} matches: narrow the query"), None
        return
    charset = device.character_set if device is not None else None
    builder = ResponseBuilder(
        identifier, character_set=charset or settings.RIS_MWL_DEFAULT_CHARACTER_SET
    )
    pending = PENDING_WARNING if _has_unsupported_keys(identifier) else PENDING
    fast = settings.RIS_MWL_FAST_ENCODING
    direct = rows and fast and settings.RIS_MWL_DIRECT_SEND
    stream = PendingResponses.open(event, pending) if direct else None
    if stream is not None:
        yield from _send_directly(event, stream, builder, rows)
        return
    for row in rows:
        wait_until_sent(event.assoc)  # one response in flight: C-CANCEL is read in between
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield pending, EncodedIdentifier(builder, row) if fast else builder.dataset(row)


def _send_directly(event, stream: PendingResponses, builder: ResponseBuilder, rows: list[dict]):
    """The Pending responses in batches on the socket (worklist.mwl.dimse_stream), then the final
    status through pynetdicom. The DUL thread keeps reading meanwhile, so a C-CANCEL is seen between
    two responses."""
    ts = event.context.transfer_syntax
    for row in rows:
        if event.is_cancelled:
            stream.flush()
            yield CANCEL, None
            return
        try:
            encoded = builder.encode(
                row, implicit_vr=ts.is_implicit_VR, little_endian=ts.is_little_endian
            )
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
