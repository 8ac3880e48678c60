"""Search query parameters (PS3.18 8.3.4) -> a C-FIND identifier.

A search names its matching keys as ``attribute=value`` (``attribute`` a keyword or a tag, a
path through sequences joined by dots) and its return keys with ``includefield``. Both become
one identifier, exactly what a modality would send in its C-FIND: the matching engine then
cannot tell which door the query came through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom import Dataset
from pydicom.config import disable_value_validation
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.sequence import Sequence

from worklist.dicom import ITEM, Attr

#: Query parameters that are not matching keys (PS3.18 Table 8.3.4-1).
CONTROL = {
    "includefield",
    "fuzzymatching",
    "limit",
    "offset",
    "emptyvaluematching",
    "multiplevaluematching",
}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_NUMERIC_VRS = {"US", "SS", "UL", "SL", "UV", "SV"}
_FLOAT_VRS = {"FL", "FD"}


class QueryParameterError(ValueError):
    """A query parameter that is not valid for PS3.18 8.3.4: answered 400."""


@dataclass
class Search:
    """One search request: the identifier and the paging and matching options it came with."""

    identifier: Dataset
    offset: int = 0
    limit: int | None = None
    #: Options asked for that ris does not implement (PS3.18 8.3.4.2, .5, .6): a Warning each.
    unsupported_options: list[str] = field(default_factory=list)


def attribute_path(text: str) -> list[int]:
    """``ScheduledProcedureStepSequence.Modality`` or ``00400100.00080060`` -> tags."""
    tags = []
    for part in text.split("."):
        if _TAG.match(part):
            tag = int(part, 16)
            try:
                dictionary_VR(tag)
            except KeyError as exc:
                raise QueryParameterError(f"unknown attribute tag {part}") from exc
        else:
            tag = tag_for_keyword(part)
            if tag is None:
                raise QueryParameterError(f"unknown attribute {part!r}")
        tags.append(tag)
    for tag in tags[:-1]:
        if dictionary_VR(tag) != "SQ":
            raise QueryParameterError(f"{keyword_for_tag(tag) or tag:08X} is not a sequence")
    return tags


def _item_at(ds: Dataset, tags: list[int]) -> Dataset:
    """The (first and only) item of each sequence along ``tags``, created when missing."""
    for tag in tags:
        if tag not in ds or not ds[tag].value:
            ds.add_new(tag, "SQ", Sequence([Dataset()]))
        ds = ds[tag].value[0]
    return ds


def _value(vr: str, text: str):
    if text == "":
        return None
    if vr == "UI":
        return text.replace(",", "\\")  # uid-list-match: 1#value (PS3.18 8.3.4.1)
    if vr in _NUMERIC_VRS:
        try:
            return int(text)
        except ValueError as exc:
            raise QueryParameterError(f"{text!r} is not an integer") from exc
    if vr in _FLOAT_VRS:
        try:
            return float(text)
        except ValueError as exc:
            raise QueryParameterError(f"{text!r} is not a number") from exc
    return text


def _put(ds: Dataset, tags: list[int], text: str | None) -> None:
    parent = _item_at(ds, tags[:-1])
    tag = tags[-1]
    vr = dictionary_VR(tag)
    if vr == "SQ":
        if text:
            raise QueryParameterError("a sequence takes no value; name its attributes instead")
        if tag not in parent:
            parent.add_new(tag, "SQ", Sequence())
        return
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or " or " in vr:
        raise QueryParameterError(f"{keyword_for_tag(tag) or f'{tag:08X}'} cannot be queried")
    if text is None and tag in parent:
        return  # includefield of a key already matched on
    with disable_value_validation():  # wild cards and ranges are not valid values of their VR
        parent.add_new(tag, vr, _value(vr, text or ""))


def _include_all(ds: Dataset, tree: dict[int, Attr]) -> None:
    """Every attribute ris supports, as return keys (``includefield=all``)."""
    for tag, attr in tree.items():
        if tag not in ds:
            if attr.children is not None:
                ds.add_new(tag, "SQ", Sequence())
            else:
                ds.add_new(tag, attr.vr, None)
        elif attr.children is not None and ds[tag].value:
            _include_all(ds[tag].value[0], attr.children)


def _flag(name: str, values: list[str]) -> bool:
    value = values[-1].lower()
    if value not in ("true", "false"):
        raise QueryParameterError(f"{name} must be true or false")
    return value == "true"


def _uint(name: str, values: list[str]) -> int:
    value = values[-1]
    if not value.isdigit():
        raise QueryParameterError(f"{name} must be an unsigned integer")
    return int(value)


def parse_search(params: Iterable[tuple[str, list[str]]]) -> Search:
    """A search's query parameters (``QueryDict.lists()``) as one C-FIND identifier.

    Without ``includefield`` the answer carries every attribute ris supports, as with
    ``includefield=all`` (docs/conformance.md, DICOMweb).
    """
    ds = Dataset()
    search = Search(identifier=ds)
    includes: list[str] = []
    include_all = None
    for name, values in params:
        if name == "includefield":
            for value in values:
                for part in value.split(","):
                    if part == "all":
                        include_all = True
                    elif part:
                        includes.append(part)
            include_all = include_all or False
        elif name == "limit":
            search.limit = _uint(name, values)
        elif name == "offset":
            search.offset = _uint(name, values)
        elif name in ("fuzzymatching", "emptyvaluematching", "multiplevaluematching"):
            if _flag(name, values):
                search.unsupported_options.append(name)
        else:
            if len(values) > 1:
                raise QueryParameterError(f"{name} is given more than once")
            _put(ds, attribute_path(name), values[0])
    for name in includes:
        _put(ds, attribute_path(name), None)
    if include_all is None or include_all:
        _include_all(ds, ITEM)
    return search
