"""Checks an MPPS N-CREATE / N-SET attribute list against PS3.4 F.7.2 and IHE RAD-6/RAD-7.

Pure functions over a pydicom ``Dataset``: they never touch the database, so a request is fully
checked before anything is written ("nothing is stored from a failed request"). A refusal is an
``MppsError`` carrying the DIMSE status and an Error Comment (LO, at most 64 characters) that names
the attribute by tag and keyword, so the engineer at the modality can find it in their log.

Where the standard is stricter than the modalities in the field, ris takes the lenient reading
and says so in ``docs/conformance.md``: Type 2 attributes may be absent (they are stored when sent),
UIDs inside the attribute list are checked for characters and length but not for leading zeros
(the SOP Instance UID of the PPS itself must be a valid UID, PS3.5 9.1), an N-SET that repeats
attributes only the N-CREATE may set is answered with the Warning 0x0107 (values kept).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone
from pydicom.charset import python_encoding
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from mpps.models import PPSStatus
from worklist import pn
from worklist.errors import ErrorCode
from worklist.states import INCORRECT_WORKLIST_ENTRY

# DIMSE status codes (PS3.7 Annex C) an MPPS SCP answers with.
SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
ATTRIBUTE_LIST_ERROR = 0x0107  # a Warning: some attributes were not set
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
INVALID_OBJECT_INSTANCE = 0x0117
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121
#: Error ID (0000,0903) of PS3.4 F.7.2.2: "Performed Procedure Step Object may no longer be
#: updated", sent with PROCESSING_FAILURE.
ERROR_ID_NO_LONGER_UPDATABLE = 0xA710

#: The DIMSE status of an N-CREATE / N-SET that a domain service refused, per error code; the
#: Error Comment is the error's message. A value the domain rejects is an invalid attribute value
#: (PS3.7 C.4.2 / C.4.3); a refused state change or a clash is a processing failure, which tells
#: the modality that retrying the same request will not help. Every ErrorCode has one
#: (tests/test_error_mappings.py).
DOMAIN_ERROR_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_VALUE: INVALID_ATTRIBUTE_VALUE,
    ErrorCode.UNKNOWN_PROCEDURE: INVALID_ATTRIBUTE_VALUE,
    ErrorCode.INVALID_TRANSITION: PROCESSING_FAILURE,
    ErrorCode.NOT_FOUND: PROCESSING_FAILURE,
    ErrorCode.DUPLICATE: PROCESSING_FAILURE,
    ErrorCode.SCHEDULE_CONFLICT: PROCESSING_FAILURE,
    ErrorCode.OUTSIDE_OPENING_HOURS: PROCESSING_FAILURE,
    ErrorCode.IN_THE_PAST: PROCESSING_FAILURE,
    ErrorCode.NOTHING_TO_UNDO: PROCESSING_FAILURE,
}


#: Attributes an N-SET may not change (Table F.7.2-1, N-SET column "-").
CREATE_ONLY = frozenset(
    Tag(t)
    for t in (
        0x00400270,  # Scheduled Step Attributes Sequence
        0x00100010,  # Patient's Name
        0x00100020,  # Patient ID
        0x00100030,  # Patient's Birth Date
        0x00100040,  # Patient's Sex
        0x00081120,  # Referenced Patient Sequence
        0x00400253,  # Performed Procedure Step ID
        0x00400241,  # Performed Station AE Title
        0x00400242,  # Performed Station Name
        0x00400243,  # Performed Location
        0x00400244,  # Performed Procedure Step Start Date
        0x00400245,  # Performed Procedure Step Start Time
        0x00080060,  # Modality
        0x00200010,  # Study ID
    )
)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: PS3.5 9.1: components of digits without leading zeros (a lone 0 is a component of its own).
_STRICT_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

#: Maximum value length per VR in characters (PS3.5 6.2, Table 6.2-1), for each value of a
#: multi-valued element; PN per component group. DA, TM and DT are checked by their parsers.
VR_MAX_LENGTH = {
    "AE": 16, "AS": 4, "CS": 16, "DS": 16, "IS": 12, "LO": 64, "LT": 10240, "PN": 64,
    "SH": 16, "ST": 1024, "UI": 64,
}
_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")  # YYYYMMDD, or ACR-NEMA YYYY.MM.DD
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
_TZ_OFFSET = re.compile(r"^([+-])(\d{2})(\d{2})$")


class MppsError(Exception):
    """A refused MPPS request: the DIMSE failure status and a comment for the modality."""

    def __init__(
        self,
        status: int,
        comment: str,
        *,
        error_id: int | None = None,
        attributes: tuple[int, ...] = (),
    ) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment
        self.error_id = error_id
        self.attributes = attributes


def tag_label(tag: int) -> str:
    """``(0040,0253) PerformedProcedureStepID``: how the modality's own logs show an attribute."""
    tag = Tag(tag)
    name = keyword_for_tag(tag) or "private"
    return f"({tag.group:04X},{tag.element:04X}) {name}"




# --- parsed requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRef:
    """One Scheduled Step Attributes Sequence item: how the modality names the step it did."""

    study_instance_uid: str
    accession_number: str = ""
    requested_procedure_id: str = ""
    sps_id: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "study_instance_uid": self.study_instance_uid,
            "accession_number": self.accession_number,
            "requested_procedure_id": self.requested_procedure_id,
            "sps_id": self.sps_id,
        }


@dataclass(frozen=True)
class SeriesInfo:
    series_instance_uid: str
    protocol_name: str
    description: str = ""
    performing_physician: str = ""
    operators: str = ""
    retrieve_ae_title: str = ""
    referenced_images: list[list[str]] = field(default_factory=list)
    referenced_non_images: list[list[str]] = field(default_factory=list)


@dataclass
class CreateRequest:
    """A valid N-CREATE, parsed into the fields ris keeps."""

    fields: dict[str, Any]
    step_refs: list[StepRef]
    series: list[SeriesInfo]
    dataset_json: dict[str, Any]


@dataclass
class SetRequest:
    """A valid N-SET: model fields to change, the series (None: not sent), what was ignored."""

    fields: dict[str, Any]
    series: list[SeriesInfo] | None
    ignored: tuple[int, ...]
    dataset_json: dict[str, Any]

    @property
    def status(self) -> str | None:
        return self.fields.get("status")


# --- N-CREATE ----------------------------------------------------------------------------------


def validate_create(ds: Dataset) -> CreateRequest:
    """Check an N-CREATE attribute list (Table F.7.2-1, column C) and parse it."""
    _check_character_set(ds)
    dataset_json = dataset_to_json(ds)  # first: it names an element that cannot be read at all
    check_value_lengths(ds)
    status = _required(ds, 0x00400252)
    if status != PPSStatus.IN_PROGRESS:
        # F.7.2.1.3: a PPS is created IN PROGRESS; any other value is an invalid value.
        raise MppsError(
            INVALID_ATTRIBUTE_VALUE,
            f"(0040,0252) must be IN PROGRESS at N-CREATE, not {status[:16]!r}",
            attributes=(0x00400252,),
        )
    step_refs = _step_refs(ds)
    pps_id = _required(ds, 0x00400253)
    station_ae = _required(ds, 0x00400241)
    start_date = _required(ds, 0x00400244)
    start_time = _required(ds, 0x00400245)
    modality = _required(ds, 0x00080060)
    tz = _timezone(ds)
    fields: dict[str, Any] = {
        "status": PPSStatus.IN_PROGRESS,
        "pps_id": _fit(pps_id, 16, 0x00400253),
        "station_ae_title": _fit(station_ae, 16, 0x00400241),
        "station_name": _fit(_text(ds, 0x00400242), 16, 0x00400242),
        "location": _fit(_text(ds, 0x00400243), 16, 0x00400243),
        "modality": _fit(modality, 16, 0x00080060),
        "started_at": _datetime(start_date, start_time, tz, 0x00400244, 0x00400245),
        "ended_at": _optional_end(ds, tz),
        "description": _fit(_text(ds, 0x00400254), 64, 0x00400254),
        "type_description": _fit(_text(ds, 0x00400255), 64, 0x00400255),
        "comments": _text(ds, 0x00400280),
        "study_id": _fit(_text(ds, 0x00200010), 16, 0x00200010),
        "patient_name": _fit(_patient_name(ds), 200, 0x00100010),
        "patient_id": _fit(_text(ds, 0x00100020), 64, 0x00100020),
        "procedure_codes": _codes(ds, 0x00081032),
        "protocol_codes": _codes(ds, 0x00400260),
        "discontinuation_reason": _first_code(ds, 0x00400281),
        "scheduled_step_refs": [ref.as_dict() for ref in step_refs],
        "character_set": _character_set(ds),
    }
    series = _series(ds) or []
    return CreateRequest(
        fields=fields, step_refs=step_refs, series=series, dataset_json=dataset_json
    )


def _step_refs(ds: Dataset) -> list[StepRef]:
    tag = 0x00400270
    if tag not in ds:
        raise MppsError(MISSING_ATTRIBUTE, f"Missing {tag_label(tag)}", attributes=(tag,))
    items = ds[tag].value or []
    if not items:
        raise MppsError(
            MISSING_ATTRIBUTE_VALUE, f"{tag_label(tag)} has no item", attributes=(tag,)
        )
    refs = []
    for number, item in enumerate(items, start=1):
        where = f" in (0040,0270) item {number}"
        study_uid = _required(item, 0x0020000D, where=where)
        _check_uid(study_uid, 0x0020000D, where)
        refs.append(
            StepRef(
                study_instance_uid=study_uid,
                accession_number=_text(item, 0x00080050),
                requested_procedure_id=_text(item, 0x00401001),
                sps_id=_text(item, 0x00400009),
            )
        )
    return refs


# --- N-SET -------------------------------------------------------------------------------------


def validate_set(
    ds: Dataset,
    *,
    stored_json: dict[str, Any],
    stored_ended_at: dt.datetime | None,
    stored_series_count: int,
) -> SetRequest:
    """Check an N-SET modification list against the stored PPS (which must not be final).

    Attributes only the N-CREATE may carry are ignored (and reported) when their value differs
    from the stored one; modalities that resend the whole dataset with unchanged values are
    answered with plain Success.
    """
    _check_character_set(ds)
    dataset_json = dataset_to_json(ds)
    check_value_lengths(ds)
    ignored = tuple(
        sorted(
            int(Tag(key))
            for key, value in dataset_json.items()
            if Tag(key) in CREATE_ONLY and stored_json.get(key) != value
        )
    )
    for tag in ignored:
        dataset_json.pop(f"{tag:08X}", None)
    fields: dict[str, Any] = {}
    tz = _timezone(ds)
    if 0x00400252 in ds and _text(ds, 0x00400252):
        status = _text(ds, 0x00400252)
        if status not in PPSStatus.values:
            raise MppsError(
                INVALID_ATTRIBUTE_VALUE,
                f"(0040,0252) {status[:16]!r}: use COMPLETED or DISCONTINUED",
                attributes=(0x00400252,),
            )
        fields["status"] = status
    for tag, name, limit in (
        (0x00400254, "description", 64),
        (0x00400255, "type_description", 64),
        (0x00400280, "comments", None),
    ):
        if tag in ds:
            fields[name] = _fit(_text(ds, tag), limit, tag) if limit else _text(ds, tag)
    for tag, name in ((0x00081032, "procedure_codes"), (0x00400260, "protocol_codes")):
        if tag in ds:
            fields[name] = _codes(ds, tag)
    if 0x00400281 in ds:
        fields["discontinuation_reason"] = _first_code(ds, 0x00400281)
    if 0x00400250 in ds or 0x00400251 in ds:
        fields["ended_at"] = _optional_end(ds, tz)
    series = _series(ds)
    final = fields.get("status") in (PPSStatus.COMPLETED, PPSStatus.DISCONTINUED)
    if final:
        _check_final_state(
            ds,
            fields["status"],
            ended_at=fields.get("ended_at", stored_ended_at),
            series_count=len(series) if series is not None else stored_series_count,
        )
    return SetRequest(fields=fields, series=series, ignored=ignored, dataset_json=dataset_json)


def _check_final_state(
    ds: Dataset, status: str, *, ended_at: dt.datetime | None, series_count: int
) -> None:
    """IHE RAD-7 / PS3.4 F.7.2.2: a final PPS says when it ended and what it produced."""
    if ended_at is None:
        for tag in (0x00400250, 0x00400251):
            if tag not in ds:
                raise MppsError(
                    MISSING_ATTRIBUTE, f"{status} needs {tag_label(tag)}", attributes=(tag,)
                )
            if not _text(ds, tag):
                raise MppsError(
                    MISSING_ATTRIBUTE_VALUE,
                    f"{status} needs a value in {tag_label(tag)}",
                    attributes=(tag,),
                )
    # A DISCONTINUED PPS may have no series (stopped before the first image: IHE RAD-7).
    if status == PPSStatus.COMPLETED and series_count == 0:
        tag = 0x00400340
        if tag not in ds:
            raise MppsError(
                MISSING_ATTRIBUTE, f"COMPLETED needs {tag_label(tag)}", attributes=(tag,)
            )
        raise MppsError(
            MISSING_ATTRIBUTE_VALUE,
            f"COMPLETED needs an item in {tag_label(tag)}",
            attributes=(tag,),
        )


# --- shared pieces -----------------------------------------------------------------------------


def dataset_to_json(ds: Dataset) -> dict[str, Any]:
    """The attribute list as DICOM JSON; a value pydicom cannot read is an invalid value."""
    try:
        return ds.to_json_dict()
    except Exception:  # noqa: BLE001 - any decoding failure is the peer's bad value
        pass
    for tag in list(ds.keys()):  # find the culprit, to name it in the Error Comment
        try:
            single = Dataset()
            single.add(ds[tag])
            single.to_json_dict()
        except Exception as exc:  # noqa: BLE001
            raise MppsError(
                INVALID_ATTRIBUTE_VALUE,
                f"{tag_label(tag)} cannot be read: {exc}",
                attributes=(int(tag),),
            ) from exc
    raise MppsError(PROCESSING_FAILURE, "the attribute list cannot be read")


def _check_character_set(ds: Dataset) -> None:
    for value in _values(ds, 0x00080005):
        if value not in python_encoding:
            raise MppsError(
                INVALID_ATTRIBUTE_VALUE,
                f"(0008,0005) {value[:20]!r} is not a known character set",
                attributes=(0x00080005,),
            )


def _character_set(ds: Dataset) -> str:
    return _fit("\\".join(_values(ds, 0x00080005)), 64, 0x00080005)


def _values(ds: Dataset, tag: int) -> list[str]:
    if tag not in ds:
        return []
    value = ds[tag].value
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | MultiValue):
        return [str(v).strip() for v in value]
    return [str(value).strip()]


def _patient_name(ds: Dataset) -> str:
    """Patient's Name as the modality reported it, its groups placed as worklist.pn places every
    name (a Hanzi-only single group is the ideographic group); never romanised: it is a report."""
    text = _text(ds, 0x00100010)
    try:
        return pn.canonical(text)
    except ValueError:  # more groups or components than PN has: keep what was sent
        return text


def _text(ds: Dataset, tag: int) -> str:
    """A single-valued element as text ("" when absent or empty); multi-values joined by \\."""
    return "\\".join(v for v in _values(ds, tag))


def _required(ds: Dataset, tag: int, *, where: str = "") -> str:
    """A Type 1 attribute: 0x0120 when absent, 0x0121 when empty."""
    if tag not in ds:
        raise MppsError(MISSING_ATTRIBUTE, f"Missing {tag_label(tag)}{where}", attributes=(tag,))
    value = _text(ds, tag)
    if not value:
        raise MppsError(
            MISSING_ATTRIBUTE_VALUE, f"{tag_label(tag)} is empty{where}", attributes=(tag,)
        )
    return value


def _fit(value: str, limit: int, tag: int) -> str:
    if len(value) > limit:
        raise MppsError(
            INVALID_ATTRIBUTE_VALUE,
            f"{tag_label(tag)} is longer than {limit} characters",
            attributes=(tag,),
        )
    return value


def _check_uid(value: str, tag: int, where: str = "") -> None:
    # Leading zeros in components are tolerated: old modalities emit them and PACS accept them.
    if len(value) > 64 or not _UID.match(value):
        raise MppsError(
            INVALID_ATTRIBUTE_VALUE, f"{tag_label(tag)} is not a UID{where}", attributes=(tag,)
        )


def is_valid_uid(value: str) -> bool:
    """A UID as PS3.5 9.1 defines it: at most 64 characters, digit components without leading
    zeros (``1.2.3.04`` is not one)."""
    return bool(value) and len(value) <= 64 and bool(_STRICT_UID.match(value))


def check_value_lengths(ds: Dataset, where: str = "") -> None:
    """Refuse (0x0106, naming the attribute) any value longer than its VR allows, or holding a
    NUL.

    ris stores what the modality sent or refuses it: a value cut to fit would reach the PACS and
    the HIS as something the modality never said.
    """
    for elem in ds:
        vr = elem.VR
        if vr == "SQ":
            for number, item in enumerate(elem.value or [], start=1):
                check_value_lengths(item, f" in ({elem.tag.group:04X},{elem.tag.element:04X}) "
                                          f"item {number}")
            continue
        limit = VR_MAX_LENGTH.get(vr)
        if limit is None or elem.value is None or elem.value == "":
            continue
        values = elem.value if isinstance(elem.value, list | tuple | MultiValue) else [elem.value]
        for value in values:
            text = str(value).rstrip("\x00") if vr == "UI" else str(value)  # UI's NUL padding
            if "\x00" in text:
                # No string value holds one (PS3.5 6.2), and PostgreSQL stores none in text.
                raise MppsError(
                    INVALID_ATTRIBUTE_VALUE, f"{tag_label(elem.tag)} holds a NUL (0x00){where}",
                    attributes=(int(elem.tag),),
                )
            parts = text.split("=") if vr == "PN" else [text]
            if any(len(part) > limit for part in parts):
                raise MppsError(
                    INVALID_ATTRIBUTE_VALUE,
                    f"{tag_label(elem.tag)} is longer than {vr} allows ({limit}){where}",
                    attributes=(int(elem.tag),),
                )


def _timezone(ds: Dataset) -> dt.tzinfo:
    """Timezone Offset From UTC (0008,0201) when the modality sends it, else the department's."""
    offset = _text(ds, 0x00080201)
    if offset:
        match = _TZ_OFFSET.match(offset)
        if not match:
            raise MppsError(
                INVALID_ATTRIBUTE_VALUE,
                f"(0008,0201) {offset[:10]!r} is not +HHMM or -HHMM",
                attributes=(0x00080201,),
            )
        sign = -1 if match[1] == "-" else 1
        minutes = int(match[2]) * 60 + int(match[3])
        return dt.timezone(sign * dt.timedelta(minutes=minutes))
    return timezone.get_default_timezone()


def _datetime(date: str, time: str, tz: dt.tzinfo, date_tag: int, time_tag: int) -> dt.datetime:
    day = _parse_date(date, date_tag)
    clock = _parse_time(time, time_tag)
    naive = dt.datetime.combine(day, clock)
    if isinstance(tz, dt.timezone):
        return naive.replace(tzinfo=tz)
    return timezone.make_aware(naive, tz)


def _parse_date(value: str, tag: int) -> dt.date:
    match = _DA.match(value)
    try:
        if not match:
            raise ValueError(value)
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise MppsError(
            INVALID_ATTRIBUTE_VALUE,
            f"{tag_label(tag)} {value[:10]!r} is not YYYYMMDD",
            attributes=(tag,),
        ) from None


def _parse_time(value: str, tag: int) -> dt.time:
    match = _TM.match(value)
    try:
        if not match:
            raise ValueError(value)
        fraction = (match[4] or "").ljust(6, "0")
        return dt.time(
            int(match[1]),
            int(match[2] or 0),
            min(int(match[3] or 0), 59),  # a leap second (60) is legal in TM
            int(fraction or 0),
        )
    except ValueError:
        raise MppsError(
            INVALID_ATTRIBUTE_VALUE,
            f"{tag_label(tag)} {value[:14]!r} is not HHMMSS",
            attributes=(tag,),
        ) from None


def _optional_end(ds: Dataset, tz: dt.tzinfo) -> dt.datetime | None:
    date, time = _text(ds, 0x00400250), _text(ds, 0x00400251)
    if not date and not time:
        return None
    if not date or not time:
        missing = 0x00400250 if not date else 0x00400251
        if missing not in ds:
            raise MppsError(
                MISSING_ATTRIBUTE, f"Missing {tag_label(missing)}", attributes=(missing,)
            )
        raise MppsError(
            MISSING_ATTRIBUTE_VALUE,
            f"{tag_label(missing)} is empty but its pair is set",
            attributes=(missing,),
        )
    return _datetime(date, time, tz, 0x00400250, 0x00400251)


def _code(item: Dataset) -> dict[str, str] | None:
    value = _text(item, 0x00080100) or _text(item, 0x00080119) or _text(item, 0x00080120)
    if not value:
        return None
    return {
        "value": value,
        "scheme": _text(item, 0x00080102),
        "meaning": _text(item, 0x00080104),
    }


def _codes(ds: Dataset, tag: int) -> list[dict[str, str]]:
    if tag not in ds:
        return []
    return [code for item in (ds[tag].value or []) if (code := _code(item)) is not None]


def _first_code(ds: Dataset, tag: int) -> dict[str, str] | None:
    codes = _codes(ds, tag)
    return codes[0] if codes else None


def _references(item: Dataset, tag: int, where: str) -> list[list[str]]:
    if tag not in item:
        return []
    refs = []
    for number, ref in enumerate(item[tag].value or [], start=1):
        here = f"{where}/{number}"
        sop_class = _required(ref, 0x00081150, where=here)
        sop_instance = _required(ref, 0x00081155, where=here)
        _check_uid(sop_instance, 0x00081155, here)
        refs.append([sop_class, sop_instance])
    return refs


def _series(ds: Dataset) -> list[SeriesInfo] | None:
    """The Performed Series Sequence, or None when the request does not carry it."""
    tag = 0x00400340
    if tag not in ds:
        return None
    series = []
    for number, item in enumerate(ds[tag].value or [], start=1):
        where = f" in (0040,0340) item {number}"
        uid = _required(item, 0x0020000E, where=where)
        _check_uid(uid, 0x0020000E, where)
        series.append(
            SeriesInfo(
                series_instance_uid=uid,
                protocol_name=_fit(_required(item, 0x00181030, where=where), 64, 0x00181030),
                description=_fit(_text(item, 0x0008103E), 64, 0x0008103E),
                performing_physician=_fit(_text(item, 0x00081050), 200, 0x00081050),
                operators=_fit(_text(item, 0x00081070), 400, 0x00081070),
                retrieve_ae_title=_fit(_text(item, 0x00080054), 200, 0x00080054),
                referenced_images=_references(item, 0x00081140, f" in series {number} image"),
                referenced_non_images=_references(
                    item, 0x00400220, f" in series {number} non-image"
                ),
            )
        )
    return series


def is_incorrect_worklist_entry(reason: dict[str, str] | None) -> bool:
    """IHE RAD-7: 110514 (DCM) means the modality picked the wrong worklist entry."""
    if not reason:
        return False
    return (reason.get("value"), reason.get("scheme")) == INCORRECT_WORKLIST_ENTRY
