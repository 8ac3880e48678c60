"""The one mapping from a scheduled step to a DICOM Modality Worklist item.

Every interface that shows a step as DICOM (the MWL SCP, the REST API's worklist endpoint, the
coercion of images sent to the PACS) goes through this module, so a key is mapped once:

- ``ROW_FIELDS`` names the columns one worklist item needs (a flat ``values()`` row: one SQL
  query with joins, no model instances, no N+1);
- ``ITEM`` is the tree of supported attributes (PS3.4 Table K.6-1 plus the IHE SWF return keys of
  IHE RAD-TF-2 Table 4.5-3, listed in docs/conformance.md), each with a getter on such a row;
- ``ResponseBuilder`` projects a row onto the keys a C-FIND identifier asked for (requested keys
  only, nested sequence keys included, Type 2 keys empty rather than missing) in a chosen
  Specific Character Set, as a pydicom ``Dataset`` or directly as encoded bytes;
- ``worklist_item(step)`` is the full item of a model instance.

Dates and times are the department's local clock (``TIME_ZONE``).
"""

from __future__ import annotations

import datetime as dt
import re
import struct
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from django.conf import settings
from pydicom import Dataset
from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import dictionary_VR
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName as DicomPersonName

from worklist import age, pn

#: Flat row of one worklist item: name -> ORM path from ScheduledProcedureStep.
ROW_FIELDS: dict[str, str] = {
    "pk": "pk",
    "sps_id": "sps_id",
    "modality": "modality",
    "scheduled_start": "scheduled_start",
    "scheduled_end": "scheduled_end",
    "performing_physician": "performing_physician",
    "sps_description": "description",
    "protocol_codes": "protocol_codes",
    "location": "location",
    "pre_medication": "pre_medication",
    "contrast_agent": "contrast_agent",
    "status": "status",
    "station_ae": "station__ae_title",
    "station_name": "station__station_name",
    "rp_id": "requested_procedure__requested_procedure_id",
    "rp_description": "requested_procedure__description",
    "rp_code_value": "requested_procedure__code_value",
    "rp_code_scheme": "requested_procedure__code_scheme",
    "rp_code_meaning": "requested_procedure__code_meaning",
    "study_uid": "requested_procedure__study_instance_uid",
    "rp_priority": "requested_procedure__priority",
    "transport": "requested_procedure__transport_arrangements",
    "accession": "requested_procedure__order__accession_number",
    "requesting_physician": "requested_procedure__order__requesting_physician",
    "referring_physician": "requested_procedure__order__referring_physician",
    "requesting_service": "requested_procedure__order__requesting_service",
    "placer_number": "requested_procedure__order__placer_order_number",
    "filler_number": "requested_procedure__order__filler_order_number",
    "order_comments": "requested_procedure__order__comments",
    "reason": "requested_procedure__order__reason",
    "admission_id": "requested_procedure__order__visit__admission_id",
    "assigned_location": "requested_procedure__order__visit__assigned_location",
    "visit_referring": "requested_procedure__order__visit__referring_physician",
    "patient_id": "requested_procedure__order__patient__patient_id",
    "issuer": "requested_procedure__order__patient__issuer",
    "other_ids": "requested_procedure__order__patient__other_ids",
    "name_alphabetic": "requested_procedure__order__patient__name_alphabetic",
    "name_ideographic": "requested_procedure__order__patient__name_ideographic",
    "name_phonetic": "requested_procedure__order__patient__name_phonetic",
    "birth_date": "requested_procedure__order__patient__birth_date",
    "birth_date_precision": "requested_procedure__order__patient__birth_date_precision",
    "age": "requested_procedure__order__patient__age",
    "sex": "requested_procedure__order__patient__sex",
    "weight_kg": "requested_procedure__order__patient__weight_kg",
    "size_m": "requested_procedure__order__patient__size_m",
    "medical_alerts": "requested_procedure__order__patient__medical_alerts",
    "allergies": "requested_procedure__order__patient__allergies",
    "pregnancy_status": "requested_procedure__order__patient__pregnancy_status",
    "patient_state": "requested_procedure__order__patient__patient_state",
    "special_needs": "requested_procedure__order__patient__special_needs",
    "confidentiality": "requested_procedure__order__patient__confidentiality",
    "additional_history": "requested_procedure__order__patient__additional_history",
}

SPECIFIC_CHARACTER_SET = 0x00080005
TIMEZONE_OFFSET = 0x00080201
SPS_SEQUENCE = 0x00400100
PROTOCOL_CODE_SEQUENCE = 0x00400008
REQUESTED_PROCEDURE_CODE_SEQUENCE = 0x00321064
DEFAULT_CHARACTER_SET = "ISO_IR 192"

#: Python codecs that tell whether a value fits a character set (the bytes come from pydicom).
_CODECS = {
    "": "ascii",
    "ISO_IR 6": "ascii",
    "ISO_IR 100": "latin_1",
    "ISO_IR 192": "utf-8",
    "GB18030": "gb18030",
    "GBK": "gbk",
    "ISO 2022 IR 58": "gb2312",
}


@cache
def department_zone() -> dt.tzinfo:
    """The department's time zone (TIME_ZONE): DICOM DA/TM values are local times (PS3.5 6.2)."""
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def local(value: dt.datetime | None) -> dt.datetime | None:
    """A stored (UTC) datetime on the department's clock."""
    return value.astimezone(department_zone()) if value is not None else None


def _da(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = local(value)
    return value.strftime("%Y%m%d")


def _tm(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    value = local(value)
    text = value.strftime("%H%M%S")
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


def _ds(value: Decimal | float | None) -> str:
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text[:16]


def _patient_age(row: dict) -> str:
    return age.served_age(
        age=row["age"] or "",
        birth_date=row["birth_date"],
        precision=row["birth_date_precision"] or "",
        on=dt.datetime.now(department_zone()).date(),
    )


def _tz_offset(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    offset = local(value).utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def person_name(row: dict, prefix: str = "name") -> str:
    """Join the three stored PN groups (``Wang^XiaoDong=王^小东=``, trailing ``=`` dropped)."""
    groups = [row[f"{prefix}_alphabetic"], row[f"{prefix}_ideographic"], row[f"{prefix}_phonetic"]]
    return "=".join(g or "" for g in groups).rstrip("=")


@dataclass(frozen=True)
class Attr:
    """One supported worklist attribute: its tag, VR, a getter on its parent's context."""

    tag: int
    get: Callable[[Any], Any]
    children: dict[int, Attr] | None = None
    vr: str = field(default="")
    #: The ROW_FIELDS a getter on the row reads (``_col`` says it itself): a query reads only
    #: the columns of the keys it asked for (``ResponseBuilder.columns``).
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.vr:
            object.__setattr__(self, "vr", dictionary_VR(self.tag))
        if not self.columns:
            object.__setattr__(self, "columns", getattr(self.get, "columns", ()))


def _tree(attrs: Iterable[Attr]) -> dict[int, Attr]:
    return {a.tag: a for a in sorted(attrs, key=lambda a: a.tag)}


def _col(name: str) -> Callable[[dict], Any]:
    def get(row: dict) -> Any:
        return row[name] or ""

    get.columns = (name,)  # type: ignore[attr-defined]
    return get


_CODE_ITEM = _tree(
    [
        Attr(0x00080100, lambda c: c.get("value", "")),  # Code Value
        Attr(0x00080102, lambda c: c.get("scheme", "")),  # Coding Scheme Designator
        Attr(0x00080103, lambda c: c.get("version", "")),  # Coding Scheme Version
        Attr(0x00080104, lambda c: c.get("meaning", "")),  # Code Meaning
    ]
)

_REFERENCED_SOP = _tree(
    [
        Attr(0x00081150, lambda c: ""),  # Referenced SOP Class UID
        Attr(0x00081155, lambda c: ""),  # Referenced SOP Instance UID
    ]
)

_SPS_ITEM = _tree(
    [
        Attr(0x00400001, _col("station_ae")),  # Scheduled Station AE Title
        Attr(0x00400002, lambda r: _da(r["scheduled_start"]), columns=("scheduled_start",)),
        Attr(0x00400003, lambda r: _tm(r["scheduled_start"]), columns=("scheduled_start",)),
        Attr(0x00400004, lambda r: _da(r["scheduled_end"]), columns=("scheduled_end",)),
        Attr(0x00400005, lambda r: _tm(r["scheduled_end"]), columns=("scheduled_end",)),
        Attr(0x00080060, _col("modality")),
        Attr(0x00400006, _col("performing_physician")),
        Attr(0x00400007, _col("sps_description")),
        Attr(PROTOCOL_CODE_SEQUENCE, lambda r: r["protocol_codes"] or [], _CODE_ITEM,
             columns=("protocol_codes",)),
        Attr(0x00400009, _col("sps_id")),
        Attr(0x00400010, _col("station_name")),
        Attr(0x00400011, _col("location")),
        Attr(0x00400012, _col("pre_medication")),
        Attr(0x00321070, _col("contrast_agent")),
        Attr(0x00400020, _col("status")),
    ]
)


def _rp_codes(row: dict) -> list[dict]:
    if not row["rp_code_value"]:
        return []
    return [
        {
            "value": row["rp_code_value"],
            "scheme": row["rp_code_scheme"],
            "meaning": row["rp_code_meaning"],
        }
    ]


def _other_ids(row: dict) -> list[dict]:
    return row["other_ids"] or []


#: Type of Patient ID (0010,0022) has the enumerated values of PS3.3 C.7.1.1; an identifier
#: type from HL7 (CX.5, table 0203: MR, PI, SS ...) is not one of them: it is sent as
#: Identifier Type Code (0040,0035) of the Issuer of Patient ID Qualifiers Sequence (0010,0024),
#: and the ID itself as TEXT.
_DICOM_ID_TYPES = {"TEXT", "RFID", "BARCODE"}


def _dicom_id_type(other: dict) -> str:
    value = (other.get("type") or "").upper()
    return value if value in _DICOM_ID_TYPES else "TEXT"


def _id_qualifiers(other: dict) -> list[dict]:
    value = other.get("type") or ""
    if not value or value.upper() in _DICOM_ID_TYPES or value == "linked":
        return []
    return [{"type": value}]


_ID_QUALIFIERS_ITEM = _tree([Attr(0x00400035, lambda c: c["type"][:16])])

_OTHER_ID_ITEM = _tree(
    [
        Attr(0x00100020, lambda c: c.get("id", "")),
        Attr(0x00100021, lambda c: c.get("issuer", "")),
        Attr(0x00100022, _dicom_id_type),
        Attr(0x00100024, _id_qualifiers, _ID_QUALIFIERS_ITEM),
    ]
)

_ISSUER_ITEM = _tree(
    [
        Attr(0x00400031, lambda c: ""),  # Local Namespace Entity ID
        Attr(0x00400032, lambda c: ""),  # Universal Entity ID
        Attr(0x00400033, lambda c: ""),  # Universal Entity ID Type
    ]
)

#: Every attribute ris returns (and matches on) in a worklist item, keyed by tag.
ITEM: dict[int, Attr] = _tree(
    [
        Attr(TIMEZONE_OFFSET, lambda r: _tz_offset(r["scheduled_start"]),
             columns=("scheduled_start",)),
        # Its item is the row itself: its keys' columns are the row's (_requested_columns).
        Attr(SPS_SEQUENCE, lambda r: [r], _SPS_ITEM),
        # Requested Procedure
        Attr(0x00401001, _col("rp_id")),
        Attr(0x00321060, _col("rp_description")),
        Attr(REQUESTED_PROCEDURE_CODE_SEQUENCE, _rp_codes, _CODE_ITEM,
             columns=("rp_code_value", "rp_code_scheme", "rp_code_meaning")),
        Attr(0x0020000D, _col("study_uid")),
        Attr(0x00081110, lambda r: [], _REFERENCED_SOP),  # Referenced Study Sequence
        Attr(0x00401003, _col("rp_priority")),
        Attr(0x00401004, _col("transport")),
        Attr(0x00401002, _col("reason")),
        Attr(0x00401010, lambda r: ""),  # Names of Intended Recipients of Results
        # Imaging Service Request
        Attr(0x00080050, _col("accession")),
        Attr(0x00080051, lambda r: [], _ISSUER_ITEM),  # Issuer of Accession Number Sequence
        Attr(0x00321032, _col("requesting_physician")),
        Attr(0x00080090, lambda r: r["referring_physician"] or r["visit_referring"] or "",
             columns=("referring_physician", "visit_referring")),
        Attr(0x00321033, _col("requesting_service")),
        Attr(0x00402016, _col("placer_number")),
        Attr(0x00402017, _col("filler_number")),
        Attr(0x00402400, _col("order_comments")),
        # Visit
        Attr(0x00380010, _col("admission_id")),
        Attr(0x00380300, _col("assigned_location")),
        Attr(0x00081120, lambda r: [], _REFERENCED_SOP),  # Referenced Patient Sequence
        Attr(0x00080080, lambda r: settings.RIS_INSTITUTION_NAME),
        # Patient
        Attr(0x00100010, person_name,
             columns=("name_alphabetic", "name_ideographic", "name_phonetic")),
        Attr(0x00100020, _col("patient_id")),
        Attr(0x00100021, _col("issuer")),
        Attr(0x00101002, _other_ids, _OTHER_ID_ITEM, columns=("other_ids",)),
        # DA is a whole date (PS3.5 6.2): a birth year or month only is left empty (Type 2),
        # never sent as the 1st of January.
        Attr(0x00100030, lambda r: "" if r["birth_date_precision"] else _da(r["birth_date"]),
             columns=("birth_date_precision", "birth_date")),
        # Patient's Age: asked for by modalities that show it; only where no whole birth date is
        # known (a stated age, or what a birth year implies), never computed from a full date.
        Attr(0x00101010, _patient_age, columns=("age", "birth_date", "birth_date_precision")),
        Attr(0x00100040, _col("sex")),
        Attr(0x00101030, lambda r: _ds(r["weight_kg"]), columns=("weight_kg",)),
        Attr(0x00101020, lambda r: _ds(r["size_m"]), columns=("size_m",)),
        Attr(0x00403001, _col("confidentiality")),
        Attr(0x00380500, _col("patient_state")),
        Attr(0x001021C0, lambda r: r["pregnancy_status"], columns=("pregnancy_status",)),
        Attr(0x00102000, _col("medical_alerts")),
        Attr(0x00102110, _col("allergies")),
        Attr(0x00380050, _col("special_needs")),
        Attr(0x001021B0, _col("additional_history")),
    ]
)


# --- rows from model instances ----------------------------------------------------------------


def row_for_step(step) -> dict:
    """The flat worklist row of a ``ScheduledProcedureStep`` instance (same as the query's)."""
    row = {}
    for name, path in ROW_FIELDS.items():
        value: Any = step
        for part in path.split("__"):
            if value is None:
                break
            value = getattr(value, part)
        row[name] = value
    return row


def worklist_item(step, *, character_set: str = DEFAULT_CHARACTER_SET) -> Dataset:
    """The full worklist item of a step, every supported attribute present."""
    return ResponseBuilder(None, character_set=character_set).dataset(row_for_step(step))


# --- projection onto the requested keys ---------------------------------------------------------


@dataclass(frozen=True)
class Requested:
    """A requested key: the supported attribute, or an unsupported one returned empty."""

    tag: int
    vr: str
    attr: Attr | None
    children: tuple[Requested, ...] | None = None


def _requested_all(tree: dict[int, Attr]) -> tuple[Requested, ...]:
    return tuple(
        Requested(
            a.tag, a.vr, a, _requested_all(a.children) if a.children is not None else None
        )
        for a in tree.values()
    )


def _requested(query: Dataset, tree: dict[int, Attr]) -> tuple[Requested, ...]:
    keys = []
    for elem in query:
        tag = int(elem.tag)
        if tag == SPECIFIC_CHARACTER_SET or elem.tag.is_private or elem.tag.element == 0:
            continue
        attr = tree.get(tag)
        if elem.VR == "SQ":
            items = list(elem.value or [])
            if attr is not None and attr.children is not None:
                # A sequence asked with no item (or an empty item) returns every attribute of
                # its items that ris supports; with an item, exactly the keys it names.
                if items and len(items[0]):
                    children = _requested(items[0], attr.children)
                else:
                    children = _requested_all(attr.children)
            else:
                children = _requested(items[0], {}) if items else ()
            keys.append(Requested(tag, "SQ", attr, children))
        else:
            vr = attr.vr if attr is not None else str(elem.VR)
            if vr in ("UN", "OB or OW", "US or SS") or vr.startswith("O"):
                continue  # binary or unknown: never a worklist key
            keys.append(Requested(tag, vr, attr, None))
    return tuple(sorted(keys, key=lambda r: r.tag))


def _walk_strings(keys: tuple[Requested, ...], ctx: Any, out: list[str]) -> None:
    for key in keys:
        if key.attr is None:
            continue
        value = key.attr.get(ctx)
        if key.children is not None:
            for item in value:
                _walk_strings(key.children, item, out)
        elif isinstance(value, str) and value:
            out.append(value)


def response_character_set(values: Iterable[str], wanted: str) -> str | None:
    """The (0008,0005) of a response: None for plain ASCII; ``wanted`` if it can encode every
    value, else UTF-8 (ISO_IR 192), so a name the set cannot hold is never turned to '?'."""
    texts = [v for v in values if not v.isascii()]
    if not texts:
        return None
    codec = _CODECS.get(wanted)
    if codec is None:
        return DEFAULT_CHARACTER_SET
    try:
        for text in texts:
            text.encode(codec)
    except UnicodeEncodeError:
        return DEFAULT_CHARACTER_SET
    return wanted


#: Row columns that hold a whole PN value (physicians); the patient's name is kept per group.
_PN_COLUMNS = ("performing_physician", "requesting_physician", "referring_physician",
               "visit_referring")


def _charset_value(charset: str) -> str | list[str]:
    # ISO 2022 sets with code extensions name the default repertoire first (PS3.3 C.12.1.1.2).
    return ["", charset] if charset.startswith("ISO 2022") else charset


class ResponseBuilder:
    """Builds the C-FIND responses of one query: the requested keys of each matching row.

    ``query`` None means every supported attribute (the full item). ``character_set`` is the one
    the caller wants answers in; a response whose names it cannot encode goes out in UTF-8.
    """

    def __init__(
        self,
        query: Dataset | None,
        *,
        character_set: str = DEFAULT_CHARACTER_SET,
        name_profile: str = pn.NameProfile.ALL,
    ):
        self.keys = _requested(query, ITEM) if query is not None else _requested_all(ITEM)
        self.character_set = character_set
        self.charset_requested = query is None or SPECIFIC_CHARACTER_SET in query
        self.name_profile = name_profile or pn.NameProfile.ALL

    @property
    def columns(self) -> tuple[str, ...]:
        """The ROW_FIELDS this builder's responses are made of, ``pk`` first: what a query
        needs to read for it (any other column of the row may be left None)."""
        wanted = {"pk"}
        _requested_columns(self.keys, wanted)
        if self.name_profile != pn.NameProfile.ALL:  # _profiled reads every name column
            wanted.update(("name_alphabetic", "name_ideographic", "name_phonetic", *_PN_COLUMNS))
        return tuple(name for name in ROW_FIELDS if name in wanted)

    @property
    def signature(self) -> tuple:
        """Everything but the row that this builder's bytes depend on, hashable: the requested
        keys (nested), the wanted character set and whether it was asked, the name profile,
        and the settings a getter reads (institution name, time zone). Two builders with equal
        signatures encode a row to the same bytes (the MWL response cache keys on it)."""
        return (
            _keys_signature(self.keys),
            self.character_set,
            self.charset_requested,
            str(self.name_profile),
            settings.RIS_INSTITUTION_NAME,
            settings.TIME_ZONE,
        )

    def _profiled(self, row: dict) -> dict:
        """The row with its person names as the Device's name profile wants them."""
        if self.name_profile == pn.NameProfile.ALL:
            return row
        row = dict(row)
        patient = pn.for_profile(
            pn.PersonName(row["name_alphabetic"], row["name_ideographic"], row["name_phonetic"]),
            self.name_profile,
        )
        row["name_alphabetic"], row["name_ideographic"], row["name_phonetic"] = patient.groups
        for column in _PN_COLUMNS:
            if row.get(column):
                try:
                    name = pn.PersonName.parse(row[column])
                except ValueError:
                    continue
                row[column] = str(pn.for_profile(name, self.name_profile))
        return row

    def _charset(self, row: dict) -> str | None:
        strings: list[str] = []
        _walk_strings(self.keys, row, strings)
        charset = response_character_set(strings, self.character_set)
        if charset is None and self.charset_requested and self.character_set not in (
            "",
            "ISO_IR 6",
        ):
            return self.character_set
        return charset

    def character_set_of(self, row: dict) -> str | None:
        """The Specific Character Set (0008,0005) of ``row``'s response (None: none is sent),
        for encoders of other forms (DICOM JSON in ``dicomweb``)."""
        return self._charset(row)

    # -- as a pydicom Dataset (API, PACS coercion, and the reference for the fast encoder) --

    def dataset(self, row: dict) -> Dataset:
        row = self._profiled(row)
        ds = Dataset()
        charset = self._charset(row)
        if charset is not None:
            ds.SpecificCharacterSet = _charset_value(charset)
        _fill(ds, self.keys, row)
        return ds

    # -- straight to bytes: the C-FIND fast path, byte-identical to pydicom's writer --

    def encode(self, row: dict, *, implicit_vr: bool, little_endian: bool) -> bytes:
        row = self._profiled(row)
        charset = self._charset(row)
        encodings = convert_encodings(_charset_value(charset) if charset else None)
        out = bytearray()
        order = "<" if little_endian else ">"
        if charset is not None:
            _put(
                out,
                SPECIFIC_CHARACTER_SET,
                "CS",
                _text_bytes(_charset_value(charset), "CS", encodings),
                implicit_vr,
                order,
            )
        _encode(out, self.keys, row, encodings, implicit_vr, order)
        return bytes(out)


def _requested_columns(keys: tuple[Requested, ...], out: set[str]) -> None:
    for key in keys:
        if key.attr is None:
            continue
        out.update(key.attr.columns)
        if key.tag == SPS_SEQUENCE and key.children is not None:
            _requested_columns(key.children, out)  # the item is the row (ITEM above)


def _keys_signature(keys: tuple[Requested, ...]) -> tuple:
    return tuple(
        (
            key.tag,
            key.vr,
            key.attr is not None,
            _keys_signature(key.children) if key.children is not None else None,
        )
        for key in keys
    )


def _fill(ds: Dataset, keys: tuple[Requested, ...], ctx: Any) -> None:
    for key in keys:
        if key.children is not None:
            items = key.attr.get(ctx) if key.attr is not None else []
            seq = []
            for item in items:
                sub = Dataset()
                _fill(sub, key.children, item)
                seq.append(sub)
            ds.add_new(key.tag, "SQ", Sequence(seq))
            continue
        value = key.attr.get(ctx) if key.attr is not None else None
        if value == "" or value is None:
            value = None
        ds.add_new(key.tag, key.vr, value)


_LONG_LENGTH_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"}
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UC", "UT", "PN"}


def _put(out: bytearray, tag: int, vr: str, value: bytes, implicit: bool, order: str) -> None:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        out += struct.pack(f"{order}HHL", group, element, len(value))
    elif vr in _LONG_LENGTH_VRS:
        out += struct.pack(f"{order}HH2s2xL", group, element, vr.encode(), len(value))
    else:
        out += struct.pack(f"{order}HH2sH", group, element, vr.encode(), len(value))
    out += value


_ESC_GB2312_G1 = b"\x1b$)A"
_ISO2022_DELIMITERS = re.compile(r"([\^=\\\r\n\t\f])")


def iso2022_ir58(value: str, vr: str) -> bytes:
    """GB2312 text with code extensions (ISO 2022 IR 58), as PS3.5 Annex K shows it.

    Each run between delimiters (``^`` and ``=`` in PN, and the line and value delimiters) that
    holds Chinese starts with ESC $ ) A (GB2312 into G1, used through GR), because the initial
    state is back in force at every delimiter (PS3.5 6.1.2.5.3). pydicom omits these escapes.
    """
    out = bytearray()
    for part in _ISO2022_DELIMITERS.split(value):
        if part and not part.isascii():
            out += _ESC_GB2312_G1
        out += part.encode("gb2312")
    return bytes(out)


def _text_bytes(value: Any, vr: str, encodings: list[str]) -> bytes:
    if isinstance(value, list):
        data = b"\\".join(_text_bytes(v, vr, encodings) for v in value)
    elif vr in _TEXT_VRS and "iso_ir_58" in encodings and not value.isascii():
        data = iso2022_ir58(value, vr)
    elif vr == "PN":
        data = DicomPersonName(value).encode(encodings) if not value.isascii() else value.encode()
    elif vr in _TEXT_VRS and not value.isascii():
        data = encode_string(value, encodings)
    else:
        data = value.encode("ascii", "replace")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return data


def _encode(
    out: bytearray,
    keys: tuple[Requested, ...],
    ctx: Any,
    encodings: list[str],
    implicit: bool,
    order: str,
) -> None:
    for key in keys:
        if key.children is not None:
            body = bytearray()
            items = key.attr.get(ctx) if key.attr is not None else []
            for item in items:
                content = bytearray()
                _encode(content, key.children, item, encodings, implicit, order)
                body += struct.pack(f"{order}HHL", 0xFFFE, 0xE000, len(content))
                body += content
            _put(out, key.tag, "SQ", bytes(body), implicit, order)
            continue
        value = key.attr.get(ctx) if key.attr is not None else None
        if value is None or value == "":
            data = b""
        elif key.vr == "US":
            data = struct.pack(f"{order}H", int(value))
        else:
            data = _text_bytes(value, key.vr, encodings)
        _put(out, key.tag, key.vr, data, implicit, order)
