"""Modality Worklist C-FIND identifier -> one database query (PS3.4 C.2.2.2, Table K.6-1).

``worklist_query(identifier, ...)`` reads the matching keys of an identifier and returns a
``WorklistQuery``: ONE Django queryset over ScheduledProcedureStep with the joins to requested
procedure, order, visit, patient and station, filtered on indexed columns, plus (rarely) a Python
predicate that refines its rows exactly where SQL can only give a superset:

- person names, whose three component groups may sit in one column and whose case-insensitive
  comparison must also fold non-ASCII letters (SQLite's UPPER/LIKE only fold ASCII);
- items of the JSON lists (Scheduled Protocol Code Sequence, Other Patient IDs Sequence).

The predicate only ever removes rows that SQL let through, never adds any, so the queryset stays
the one indexed query. Matching rules (PS3.4 C.2.2.2, as docs/conformance.md states them):

- empty value, or only ``*``: universal; an empty stored attribute matches nothing else;
- single value: exact and case-sensitive (PN: case-insensitive when RIS_MWL_PN_CASE_INSENSITIVE);
- ``*`` and ``?`` wildcards in AE, CS, LO, LT, PN, SH, ST, UC, UT values, with the LIKE and GLOB
  special characters of the value taken literally; a wild card in a single-value-only key (Station
  AE Title, Modality, Patient ID) is honoured, not refused (stated in docs/conformance.md);
- DA/TM ranges ``a-b``, ``a-``, ``-b`` (bounds inclusive; a TM bound or single value of reduced
  precision covers its whole minute or hour: ``-1200`` includes 12:00:59); Scheduled Procedure
  Step Start Date and Time together form one date-time range (Table K.6-1); a TM range alone whose
  start is after its end matches nothing (it never crosses midnight);
- a list of UIDs (``\\``-separated) matches any of them; several values of another key too;
- sequence matching: the item of a sequence key matches when all its keys match.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db.models import CharField, Lookup, Q, QuerySet, TextField
from django.db.models.functions import Upper
from django.utils import timezone
from pydicom import Dataset
from pydicom.dataelem import DataElement

from worklist.dicom import ROW_FIELDS, department_zone
from worklist.models import ScheduledProcedureStep, StepStatus
from worklist.states import MWL_LINGERING_STATUSES

Predicate = Callable[[dict], bool]

WILDCARD_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class MatchError(ValueError):
    """An identifier ris cannot match on: reported as 0xA900 with this Error Comment."""

    def __init__(self, message: str, tag: int | None = None) -> None:
        super().__init__(message)
        self.tag = tag


# --- SQL: the DICOM wild card as LIKE (PostgreSQL) or GLOB (SQLite, case-sensitive) ----------


def like_pattern(pattern: str) -> str:
    """A DICOM wild card value as a LIKE pattern with ``\\`` as escape character."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def glob_pattern(pattern: str) -> str:
    """A DICOM wild card value as an SQLite GLOB pattern (``[`` is its only other metachar)."""
    return pattern.replace("[", "[[]")


class DicomWildcard(Lookup):
    """``field__dicom_like="Wang*"``: case-sensitive match of a DICOM wild card value.

    SQLite's LIKE ignores ASCII case, so there GLOB does the case-sensitive match; PostgreSQL's
    LIKE is case-sensitive already.
    """

    lookup_name = "dicom_like"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        (pattern,) = rhs_params
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB {rhs}", [*lhs_params, glob_pattern(pattern)]
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, like_pattern(pattern)]


for _field in (CharField, TextField):
    _field.register_lookup(DicomWildcard)
    _field.register_lookup(Upper)


# --- values and their parsing -----------------------------------------------------------------


def _values(elem: DataElement) -> list[str]:
    """The string values of an element (several for a UID list or a multi-valued key)."""
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _clean(value: str, vr: str) -> str:
    # Leading and trailing spaces are not significant in SH, LO, CS, AE, PN (PS3.5 6.2);
    # in LT/ST/UT only trailing ones.
    return value.rstrip() if vr in ("LT", "ST", "UT") else value.strip()


def _is_universal(value: str) -> bool:
    return value == "" or set(value) == {"*"}


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _regex(pattern: str, *, ignore_case: bool) -> re.Pattern:
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def string_matcher(pattern: str, *, ignore_case: bool = False) -> Callable[[str], bool]:
    """Python twin of the SQL string match, for values SQL cannot reach (JSON, constants)."""
    if _is_universal(pattern):
        return lambda value: True
    if not _has_wildcard(pattern) and not ignore_case:
        return lambda value: (value or "") == pattern
    regex = _regex(pattern, ignore_case=ignore_case)
    return lambda value: bool(value) and regex.fullmatch(value) is not None


def _parse_date(text: str, tag: int) -> dt.date:
    text = text.strip().replace(".", "")  # ACR-NEMA style 2026.11.25 is still met
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise MatchError(f"{text!r} is not a DICOM date (YYYYMMDD)", tag) from None


_TM = re.compile(r"^(\d\d)(?::?(\d\d)(?::?(\d\d)(?:\.(\d{1,6}))?)?)?$")


def _parse_time(text: str, tag: int, *, ceil: bool) -> dt.time:
    """A TM value; ``ceil`` takes the last instant its precision covers (``12`` -> 12:59:59.9)."""
    match = _TM.match(text.strip())
    if not match:
        raise MatchError(f"{text!r} is not a DICOM time (HHMMSS.FFFFFF)", tag)
    hh, mm, ss, frac = match.groups()
    try:
        hour = int(hh)
        minute = int(mm) if mm is not None else (59 if ceil else 0)
        second = int(ss) if ss is not None else (59 if ceil else 0)
        if frac is not None:
            digits = frac.ljust(6, "9" if ceil else "0")
            micro = int(digits)
        else:
            micro = 999999 if ceil else 0
        return dt.time(hour, minute, min(second, 59), micro)
    except ValueError:
        raise MatchError(f"{text!r} is not a valid time", tag) from None


def _split_range(text: str, tag: int) -> tuple[str, str, bool]:
    if text.count("-") > 1:
        raise MatchError(f"{text!r} is not a range (a-b, a-, -b)", tag)
    if "-" in text:
        low, high = text.split("-")
        if not low.strip() and not high.strip():
            raise MatchError("a range needs at least one bound", tag)
        return low.strip(), high.strip(), True
    return text, text, False


def date_range(text: str, tag: int) -> tuple[dt.date | None, dt.date | None]:
    if _has_wildcard(text):
        raise MatchError("wild cards are not allowed in dates", tag)
    low, high, _ = _split_range(text, tag)
    return (
        _parse_date(low, tag) if low else None,
        _parse_date(high, tag) if high else None,
    )


def time_range(text: str, tag: int) -> tuple[dt.time | None, dt.time | None]:
    if _has_wildcard(text):
        raise MatchError("wild cards are not allowed in times", tag)
    low, high, _ = _split_range(text, tag)
    return (
        _parse_time(low, tag, ceil=False) if low else None,
        _parse_time(high, tag, ceil=True) if high else None,
    )


def _aware(day: dt.date, time: dt.time) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, time), department_zone())


# --- the query being built --------------------------------------------------------------------

NOTHING = Q(pk__in=[])


@dataclass
class _Builder:
    ignore_pn_case: bool
    q: Q = field(default_factory=Q)
    predicates: list[Predicate] = field(default_factory=list)
    nothing: bool = False
    status_asked: bool = False

    def add(self, q: Q | None) -> None:
        if q is not None:
            self.q &= q


def _path(name: str) -> str:
    return ROW_FIELDS[name]


def _string_q(path: str, values: list[str]) -> Q | None:
    """Exact or wild card match of a string column; several values: any of them."""
    result = None
    for value in values:
        if _is_universal(value):
            return None
        term = Q(**{f"{path}__dicom_like": value}) if _has_wildcard(value) else Q(**{path: value})
        result = term if result is None else result | term
    return result


def _pn_sql_pattern(pattern: str, ignore_case: bool) -> tuple[str, bool]:
    """A wild card pattern for SQL that matches a superset of ``pattern`` (exact in Python).

    Returns the pattern and whether it applies to UPPER(column). ``Wang^*`` also finds a stored
    ``Wang`` (trailing empty components are dropped when names are stored).
    """
    if pattern.endswith("^*"):
        pattern = pattern[:-2].rstrip("^") + "*"
    if not ignore_case or pattern.upper() == pattern.lower():
        return pattern, False
    # UPPER() of SQLite (and of PostgreSQL in the C locale) only folds ASCII: any other cased
    # letter becomes "?" in SQL and is compared exactly by the Python predicate.
    chars = [ch if ch.isascii() or ch.upper() == ch.lower() else "?" for ch in pattern]
    return "".join(chars).upper(), True


def _pn_sql(path: str, pattern: str, ignore_case: bool, *, anywhere: bool) -> Q:
    sql_pattern, upper = _pn_sql_pattern(pattern, ignore_case)
    if anywhere:
        # One column holding all three groups: any group may match.
        sql_pattern = f"*{sql_pattern.strip('*')}*"
    target = f"{path}__upper" if upper else path
    if _has_wildcard(sql_pattern):
        return Q(**{f"{target}__dicom_like": sql_pattern})
    return Q(**{target: sql_pattern})


def _normalise_pn(value: str) -> str:
    return "=".join(group.strip().rstrip("^") for group in value.split("=")).rstrip("=")


def pn_group_matcher(pattern: str, ignore_case: bool) -> Callable[[str], bool]:
    """Match one PN component group (``family^given^middle^prefix^suffix``)."""
    pattern = pattern.strip()
    if _is_universal(pattern):
        return lambda group: True
    optional_tail = pattern.endswith("^*")
    core = pattern[:-2].rstrip("^") if optional_tail else pattern.rstrip("^")
    regex_text = _regex(core, ignore_case=ignore_case).pattern
    if optional_tail:
        regex_text += r"(?:\^.*)?"
    regex = re.compile(regex_text, re.DOTALL | (re.IGNORECASE if ignore_case else 0))
    return lambda group: bool(group) and regex.fullmatch(group.rstrip("^")) is not None


def pn_matcher(pattern: str, ignore_case: bool) -> Callable[[str], bool]:
    """Match a whole PN value: a key without ``=`` may match any of the three groups; a key with
    ``=`` matches group by group, its empty groups being universal."""
    pattern = pattern.strip()
    if "=" not in pattern:
        group = pn_group_matcher(pattern, ignore_case)

        def any_group(value: str) -> bool:
            return any(group(g) for g in _normalise_pn(value or "").split("="))

        return any_group
    wanted = [pn_group_matcher(g, ignore_case) for g in pattern.split("=")[:3]]

    def each_group(value: str) -> bool:
        groups = (value or "").split("=") + ["", "", ""]
        return all(m(groups[i]) for i, m in enumerate(wanted))

    return each_group


_PN_COLUMNS = ("name_alphabetic", "name_ideographic", "name_phonetic")


def _match_patient_name(b: _Builder, values: list[str], tag: int) -> None:
    patterns = [v.strip() for v in values]
    if not patterns or any(_is_universal(p) for p in patterns):
        return
    if any(p.count("=") > 2 for p in patterns):
        raise MatchError("a person name has at most three component groups", tag)
    combined = None
    matchers = []
    for pattern in patterns:
        if "=" in pattern:
            term = Q()
            for column, group in zip(_PN_COLUMNS, pattern.split("="), strict=False):
                if not _is_universal(group.strip()):
                    term &= _pn_sql(_path(column), group.strip(), b.ignore_pn_case, anywhere=False)
        else:
            term = Q()
            for column in _PN_COLUMNS:
                term |= _pn_sql(_path(column), pattern, b.ignore_pn_case, anywhere=False)
        combined = term if combined is None else combined | term
        matchers.append(pn_matcher(pattern, b.ignore_pn_case))
    b.add(combined)

    def name_matches(row: dict) -> bool:
        value = "=".join(row[c] or "" for c in _PN_COLUMNS)
        return any(m(value) for m in matchers)

    b.predicates.append(name_matches)


def _match_pn_column(
    b: _Builder, values: list[str], tag: int, paths: tuple[str, ...], get: Callable[[dict], str]
) -> None:
    patterns = [v.strip() for v in values]
    if not patterns or any(_is_universal(p) for p in patterns):
        return
    combined = None
    for pattern in patterns:
        for group in pattern.split("="):
            if _is_universal(group.strip()):
                continue
            for path in paths:
                term = _pn_sql(path, group.strip(), b.ignore_pn_case, anywhere=True)
                combined = term if combined is None else combined | term
    matchers = [pn_matcher(p, b.ignore_pn_case) for p in patterns]
    b.add(combined)
    b.predicates.append(lambda row: any(m(get(row)) for m in matchers))


def _match_datetime(
    b: _Builder, path: str, date_text: str, time_text: str, date_tag: int, time_tag: int
) -> None:
    dates = date_range(date_text, date_tag) if date_text else (None, None)
    times = time_range(time_text, time_tag) if time_text else (None, None)
    has_date, has_time = bool(date_text), bool(time_text)
    if has_date and has_time:
        # Table K.6-1: Scheduled Procedure Step Start Date and Time match as one date-time range.
        (d_low, d_high), (t_low, t_high) = dates, times
        if d_low is not None:
            b.add(Q(**{f"{path}__gte": _aware(d_low, t_low or dt.time(0))}))
        if d_high is not None:
            b.add(Q(**{f"{path}__lte": _aware(d_high, t_high or dt.time.max)}))
        return
    if has_date:
        d_low, d_high = dates
        if d_low is not None:
            b.add(Q(**{f"{path}__gte": _aware(d_low, dt.time(0))}))
        if d_high is not None:
            b.add(Q(**{f"{path}__lt": _aware(d_high + dt.timedelta(days=1), dt.time(0))}))
        if d_low and d_high and d_low > d_high:
            b.nothing = True
        return
    if has_time:
        t_low, t_high = times
        if t_low is not None and t_high is not None and t_low > t_high:
            b.nothing = True  # a TM range alone never crosses midnight
            return
        if t_low is not None:
            b.add(Q(**{f"{path}__time__gte": t_low}))
        if t_high is not None:
            b.add(Q(**{f"{path}__time__lte": t_high}))
        b.add(Q(**{f"{path}__isnull": False}))


def _match_date(b: _Builder, path: str, text: str, tag: int) -> None:
    low, high = date_range(text, tag)
    if low is not None:
        b.add(Q(**{f"{path}__gte": low}))
    if high is not None:
        b.add(Q(**{f"{path}__lte": high}))


def _match_uids(b: _Builder, path: str, values: list[str], tag: int) -> None:
    uids = [v.strip().rstrip("\0") for v in values if v.strip()]
    if not uids or uids == ["*"]:
        return
    for uid in uids:
        if not _UID.match(uid) or len(uid) > 64:
            raise MatchError(f"{uid!r} is not a UID (no wild cards in UID lists)", tag)
    b.add(Q(**{f"{path}__in": uids}))


def _match_number(b: _Builder, path: str, values: list[str], tag: int, integer: bool) -> None:
    numbers = []
    for value in values:
        value = value.strip()
        if _is_universal(value):
            return
        try:
            numbers.append(int(value) if integer else Decimal(value))
        except (ValueError, InvalidOperation):
            raise MatchError(f"{value!r} is not a number", tag) from None
    if numbers:
        b.add(Q(**{f"{path}__in": numbers}))


# --- the key tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    kind: str  # str, pn, pncol, date, uid, num, int, seq, jsonseq, none, const, status
    field: str = ""
    sub: dict[int, Key] | None = None
    vr: str = ""


def _referring(row: dict) -> str:
    return row["referring_physician"] or row["visit_referring"] or ""


_CODE_JSON = {
    0x00080100: Key("str", "value", vr="SH"),
    0x00080102: Key("str", "scheme", vr="SH"),
    0x00080103: Key("str", "version", vr="SH"),
    0x00080104: Key("str", "meaning", vr="LO"),
}
_NO_DATA_ITEM = {
    0x00081150: Key("none", vr="UI"),
    0x00081155: Key("none", vr="UI"),
    0x00400031: Key("none", vr="UT"),
    0x00400032: Key("none", vr="UT"),
    0x00400033: Key("none", vr="CS"),
}

SPS_KEYS: dict[int, Key] = {
    0x00400001: Key("str", "station_ae", vr="AE"),
    0x00400002: Key("datetime", "scheduled_start"),
    0x00400003: Key("datetime", "scheduled_start"),
    0x00400004: Key("datetime", "scheduled_end"),
    0x00400005: Key("datetime", "scheduled_end"),
    0x00080060: Key("str", "modality", vr="CS"),
    0x00400006: Key("pncol", "performing_physician"),
    0x00400007: Key("str", "sps_description", vr="LO"),
    0x00400008: Key("jsonseq", "protocol_codes", _CODE_JSON),
    0x00400009: Key("str", "sps_id", vr="SH"),
    0x00400010: Key("str", "station_name", vr="SH"),
    0x00400011: Key("str", "location", vr="SH"),
    0x00400012: Key("str", "pre_medication", vr="LO"),
    0x00321070: Key("str", "contrast_agent", vr="LO"),
    0x00400020: Key("status", "status", vr="CS"),
}

TOP_KEYS: dict[int, Key] = {
    0x00400100: Key("seq", sub=SPS_KEYS),
    0x00401001: Key("str", "rp_id", vr="SH"),
    0x00321060: Key("str", "rp_description", vr="LO"),
    0x00321064: Key(
        "seq",
        sub={
            0x00080100: Key("str", "rp_code_value", vr="SH"),
            0x00080102: Key("str", "rp_code_scheme", vr="SH"),
            0x00080103: Key("none", vr="SH"),
            0x00080104: Key("str", "rp_code_meaning", vr="LO"),
        },
    ),
    0x0020000D: Key("uid", "study_uid"),
    0x00081110: Key("seq", sub=_NO_DATA_ITEM, field="none"),
    0x00401003: Key("str", "rp_priority", vr="SH"),
    0x00401004: Key("str", "transport", vr="LO"),
    0x00401002: Key("str", "reason", vr="LO"),
    0x00401010: Key("none", vr="PN"),
    0x00080050: Key("str", "accession", vr="SH"),
    0x00080051: Key("seq", sub=_NO_DATA_ITEM, field="none"),
    0x00321032: Key("pncol", "requesting_physician"),
    0x00080090: Key("pncol", "referring_physician"),
    0x00321033: Key("str", "requesting_service", vr="LO"),
    0x00402016: Key("str", "placer_number", vr="LO"),
    0x00402017: Key("str", "filler_number", vr="LO"),
    0x00402400: Key("str", "order_comments", vr="LT"),
    0x00380010: Key("str", "admission_id", vr="LO"),
    0x00380300: Key("str", "assigned_location", vr="LO"),
    0x00081120: Key("seq", sub=_NO_DATA_ITEM, field="none"),
    0x00080080: Key("const", "RIS_INSTITUTION_NAME", vr="LO"),
    0x00100010: Key("pn"),
    0x00100020: Key("str", "patient_id", vr="LO"),
    0x00100021: Key("str", "issuer", vr="LO"),
    0x00101002: Key(
        "jsonseq",
        "other_ids",
        {
            0x00100020: Key("str", "id", vr="LO"),
            0x00100021: Key("str", "issuer", vr="LO"),
            0x00100022: Key("str", "type", vr="CS"),
        },
    ),
    0x00100030: Key("date", "birth_date"),
    0x00100040: Key("str", "sex", vr="CS"),
    0x00101030: Key("num", "weight_kg"),
    0x00101020: Key("num", "size_m"),
    0x00403001: Key("str", "confidentiality", vr="LO"),
    0x00380500: Key("str", "patient_state", vr="LO"),
    0x001021C0: Key("int", "pregnancy_status"),
    0x00102000: Key("str", "medical_alerts", vr="LO"),
    0x00102110: Key("str", "allergies", vr="LO"),
    0x00380050: Key("str", "special_needs", vr="LO"),
    0x001021B0: Key("str", "additional_history", vr="LT"),
}


def _element_values(elem: DataElement, key: Key, tag: int) -> list[str]:
    if elem.VR == "SQ":
        raise MatchError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) is not a sequence", tag)
    try:
        values = _values(elem)
    except Exception as exc:  # noqa: BLE001 - undecodable bytes are the peer's error
        raise MatchError(f"cannot decode the value: {exc}", tag) from None
    vr = key.vr or str(elem.VR)
    cleaned = [_clean(v.rstrip("\x00") if vr == "UI" else v, vr) for v in values]
    if any("\x00" in v for v in cleaned):
        # Only a UID is padded with one (PS3.5 6.2); inside a value it matches nothing stored,
        # and PostgreSQL refuses it in a query parameter.
        raise MatchError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) holds a NUL (0x00) byte", tag)
    return cleaned


def _sequence_item(elem: DataElement, tag: int) -> Dataset | None:
    if elem.VR != "SQ":
        if elem.value in (None, "", b""):
            return None
        raise MatchError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) must be a sequence", tag)
    items = list(elem.value or [])
    if not items:
        return None
    if len(items) > 1:
        raise MatchError("a sequence matching key holds exactly one item", tag)
    return items[0]


def _json_item_matcher(item: Dataset, keys: dict[int, Key]) -> Callable[[dict], bool] | None:
    checks = []
    for elem in item:
        key = keys.get(int(elem.tag))
        if key is None:
            continue
        values = _element_values(elem, key, int(elem.tag))
        if not values or any(_is_universal(v) for v in values):
            continue
        matchers = [string_matcher(v) for v in values]
        checks.append((key.field, matchers))
    if not checks:
        return None
    return lambda entry: all(
        any(m(str(entry.get(name) or "")) for m in matchers) for name, matchers in checks
    )


def _apply(b: _Builder, query: Dataset, keys: dict[int, Key]) -> None:
    dates: dict[str, dict[str, tuple[str, int]]] = {}
    for elem in query:
        tag = int(elem.tag)
        key = keys.get(tag)
        if key is None:
            continue  # not a matching key of ris: ignored for matching, returned empty
        if key.kind in ("seq", "jsonseq"):
            item = _sequence_item(elem, tag)
            if item is None:
                continue
            if key.kind == "seq" and key.field == "none":
                if _json_item_matcher(item, key.sub or {}) is not None:
                    b.nothing = True  # ris keeps no such items: only universal matches
            elif key.kind == "seq":
                _apply(b, item, key.sub or {})
            else:
                check = _json_item_matcher(item, key.sub or {})
                if check is not None:
                    name = key.field
                    b.predicates.append(
                        lambda row, n=name, c=check: any(c(e) for e in row[n] or [])
                    )
            continue
        if key.kind == "datetime":
            values = _element_values(elem, Key("str", vr="DA"), tag)
            text = values[0] if values else ""
            part = "date" if tag in (0x00400002, 0x00400004) else "time"
            dates.setdefault(key.field, {})[part] = (text, tag)
            continue
        values = _element_values(elem, key, tag)
        if key.kind == "str":
            b.add(_string_q(_path(key.field), values))
        elif key.kind == "status":
            if values and not any(_is_universal(v) for v in values):
                b.status_asked = True
                b.add(_string_q(_path(key.field), values))
        elif key.kind == "pn":
            _match_patient_name(b, values, tag)
        elif key.kind == "pncol":
            if key.field == "referring_physician":
                paths = (_path("referring_physician"), _path("visit_referring"))
                _match_pn_column(b, values, tag, paths, _referring)
            else:
                name = key.field
                _match_pn_column(b, values, tag, (_path(name),), lambda row, n=name: row[n] or "")
        elif key.kind == "date":
            if values and values[0]:
                _match_date(b, _path(key.field), values[0], tag)
        elif key.kind == "uid":
            _match_uids(b, _path(key.field), values, tag)
        elif key.kind in ("num", "int"):
            _match_number(b, _path(key.field), values, tag, integer=key.kind == "int")
        elif key.kind == "const":
            value = getattr(settings, key.field, "")
            if values and not any(string_matcher(v)(value) for v in values):
                b.nothing = True
        elif key.kind == "none":
            if values and not any(_is_universal(v) for v in values):
                b.nothing = True
    for name, parts in dates.items():
        date_text, date_tag = parts.get("date", ("", 0))
        time_text, time_tag = parts.get("time", ("", 0))
        _match_datetime(b, _path(name), date_text, time_text, date_tag, time_tag)


# --- the public API ---------------------------------------------------------------------------


@dataclass
class WorklistQuery:
    """One C-FIND identifier as one queryset, plus the exact refinement of its rows."""

    queryset: QuerySet
    predicates: list[Predicate]

    def accepts(self, row: dict) -> bool:
        return all(p(row) for p in self.predicates)


def base_queryset() -> QuerySet:
    """Every step that is on the worklist at all (it has a time: UNSCHEDULED ones never are)."""
    return ScheduledProcedureStep.objects.filter(scheduled_start__isnull=False).exclude(
        status=StepStatus.UNSCHEDULED
    )


def worklist_query(
    identifier: Dataset,
    *,
    station_ae: str | None = None,
    ignore_pn_case: bool | None = None,
    default_statuses: list[str] | None = None,
) -> WorklistQuery:
    """The query of a Modality Worklist C-FIND identifier.

    ``station_ae`` forces Scheduled Station AE Title (a Device limited to its own steps).
    ``default_statuses`` apply when the identifier does not ask for a step status itself
    (RIS_MWL_DEFAULT_STATUSES: CANCELED, DISCONTINUED, COMPLETED only when asked).
    Raises ``MatchError`` for a key ris cannot match on as given.
    """
    if ignore_pn_case is None:
        ignore_pn_case = settings.RIS_MWL_PN_CASE_INSENSITIVE
    if default_statuses is None:
        default_statuses = list(settings.RIS_MWL_DEFAULT_STATUSES)
    b = _Builder(ignore_pn_case=ignore_pn_case)
    _apply(b, identifier, TOP_KEYS)
    if station_ae is not None:
        b.add(Q(**{_path("station_ae"): station_ae}))
    if not b.status_asked:
        b.add(_default_status_q(default_statuses))
    # Housekeeping took it off the worklist (worklist.housekeeping): whatever is asked.
    b.add(Q(off_worklist_at__isnull=True))
    qs = _rows_queryset()
    return WorklistQuery(qs.none() if b.nothing else qs.filter(b.q), b.predicates)


def _default_status_q(default_statuses: list[str]) -> Q:
    """The default statuses, plus steps that just finished while RIS_MWL_KEEP_FINISHED_MINUTES
    keeps them (since their last change; default 0: they leave at once)."""
    q = Q(status__in=default_statuses)
    keep = getattr(settings, "RIS_MWL_KEEP_FINISHED_MINUTES", 0)
    if keep > 0:
        since = timezone.now() - dt.timedelta(minutes=keep)
        q |= Q(status__in=sorted(MWL_LINGERING_STATUSES), updated_at__gte=since)
    return q


_ROWS: QuerySet | None = None


def _rows_queryset() -> QuerySet:
    """The joined, ordered ``values_list`` of every worklist row, built once: resolving its 52
    columns through five joins is a third of the ORM's time per query (each filter clones it)."""
    global _ROWS
    if _ROWS is None:
        _ROWS = (
            base_queryset()
            .order_by("scheduled_start", "sps_id")
            .values_list(*ROW_FIELDS.values())
        )
    return _ROWS
