"""A patient's age as stated, when the birth date is not known: Patient's Age (0010,1010).

Front desks in China (and HIS feeds) often register a patient with an age and no birth date
("45 岁"). Inventing a birth date from it (1 January of the year) would send a false date to every
modality and into every image; ris stores the age as it was stated, as a DICOM Age String, and
serves it in Patient's Age wherever no whole birth date is known.

An Age String (PS3.5 6.2, VR AS) is three digits and a unit: ``045Y`` years, ``003M`` months,
``002W`` weeks, ``005D`` days.
"""

from __future__ import annotations

import datetime as dt
import re

#: AS units and the words people type for them (English, Chinese, UCUM as HL7 OBX-6 sends them).
_UNITS = {
    "Y": "Y", "YEAR": "Y", "YEARS": "Y", "YR": "Y", "YRS": "Y", "A": "Y", "ANN": "Y", "岁": "Y",
    "年": "Y", "周岁": "Y",
    "M": "M", "MO": "M", "MONTH": "M", "MONTHS": "M", "个月": "M", "月": "M",
    "W": "W", "WK": "W", "WEEK": "W", "WEEKS": "W", "周": "W", "星期": "W",
    "D": "D", "DAY": "D", "DAYS": "D", "天": "D", "日": "D",
}
_TEXT = re.compile(r"^\s*(\d{1,3})\s*([^\d\s]*)\s*$")
AGE_STRING = re.compile(r"^\d{3}[DWMY]$")


def parse_age(text: str, unit: str = "") -> str:
    """``45``, ``45Y``, ``045Y``, ``45 岁``, ``3 个月``, (``3``, ``mo``) -> the Age String.

    A number without a unit is in years. Raises ``ValueError`` for anything else, so a typo is
    refused at the door instead of stored.
    """
    text = (text or "").strip()
    if not text:
        return ""
    match = _TEXT.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an age (a number and a unit: 45Y, 3M, 2W, 5D)")
    number, written = match.groups()
    key = (written or unit or "Y").strip().upper()
    if key not in _UNITS:
        raise ValueError(f"{text!r}: {key!r} is not an age unit (Y, M, W, D)")
    return f"{int(number):03d}{_UNITS[key]}"


def age_from_birth(birth: dt.date, precision: str, on: dt.date) -> str:
    """Whole years at ``on`` of a birth date known only to its year (``Y``) or month (``M``).

    A year-only birth date cannot be sent as a date (DA is a whole date), but the age in years it
    implies is known to within a year; it is computed as if born mid-year, the least wrong guess.
    """
    years = on.year - birth.year
    if precision == "M" and on.month < birth.month:
        years -= 1
    elif precision == "Y" and on.month < 7:
        years -= 1
    return f"{max(years, 0):03d}Y" if years < 1000 else ""


def served_age(*, age: str, birth_date: dt.date | None, precision: str, on: dt.date) -> str:
    """Patient's Age to answer with: empty when a whole birth date is known (the modality reads
    it from the birth date), else the stated age, else the age a partial birth date implies."""
    if birth_date is not None and not precision:
        return ""
    if age:
        return age
    if birth_date is not None:
        return age_from_birth(birth_date, precision, on)
    return ""
