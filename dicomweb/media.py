"""DICOM media types of PS3.18 8.7.3: choosing one from Accept, and writing datasets in it.

The JSON form is pydicom's DICOM JSON Model (PS3.18 F.2); the XML form is the Native DICOM
Model of PS3.19 A.1, written here because pydicom has no writer for it. Each part of a
``multipart/related`` answer holds one dataset (PS3.18 8.6.1.2).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from pydicom import Dataset
from pydicom.datadict import keyword_for_tag

DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
MULTIPART = "multipart/related"
_NATIVE_NS = "http://dicom.nema.org/PS3.19/models/NativeDICOM"
_PN_COMPONENTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")


@dataclass(frozen=True)
class MediaType:
    """A negotiated answer format: ``type`` of the payload, inside multipart or not."""

    type: str
    multipart: bool = False

    @property
    def content_type(self) -> str:
        return self.type


JSON = MediaType(DICOM_JSON)
MULTIPART_JSON = MediaType(DICOM_JSON, multipart=True)
MULTIPART_XML = MediaType(DICOM_XML, multipart=True)


def _parse_accept(header: str) -> list[tuple[float, str, dict[str, str]]]:
    ranges = []
    for index, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        params = {}
        quality = 1.0
        for param in fields[1:]:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            else:
                params[key] = value.lower()
        ranges.append((quality, -index, fields[0].lower(), params))
    ranges.sort(reverse=True)
    return [(q, media, params) for q, _, media, params in ranges]


def negotiate(accept: str | None) -> MediaType | None:
    """The format to answer a search in, or None (406) when Accept names none ris writes.

    No Accept, ``*/*`` and ``application/json`` get the default, ``application/dicom+json``
    (PS3.18 Table 14.1.3-1). A lone ``application/dicom+xml`` cannot hold a list of results,
    so it is answered as multipart/related of XML parts, as PS3.18 8.7.3.2 does for lists.
    """
    if not accept:
        return JSON
    for quality, media, params in _parse_accept(accept):
        if quality <= 0:
            continue
        if media in (DICOM_JSON, "application/json", "application/*", "*/*"):
            return JSON
        if media == DICOM_XML:
            return MULTIPART_XML
        if media in (MULTIPART, "multipart/*"):
            wanted = params.get("type", DICOM_XML)
            if wanted == DICOM_JSON:
                return MULTIPART_JSON
            if wanted == DICOM_XML:
                return MULTIPART_XML
    return None


# --- PS3.19 Native DICOM Model -------------------------------------------------------------


def _xml_attributes(parent: ET.Element, ds: Dataset) -> None:
    for elem in ds:
        tag = int(elem.tag)
        node = ET.SubElement(parent, "DicomAttribute", tag=f"{tag:08X}", vr=elem.VR)
        keyword = keyword_for_tag(tag)
        if keyword:
            node.set("keyword", keyword)
        if elem.VR == "SQ":
            for number, item in enumerate(elem.value or [], start=1):
                _xml_attributes(ET.SubElement(node, "Item", number=str(number)), item)
            continue
        value = elem.value
        if value is None or value == "":
            continue
        values = list(value) if elem.VM > 1 else [value]
        for number, one in enumerate(values, start=1):
            if elem.VR == "PN":
                _xml_person_name(node, number, str(one))
            else:
                ET.SubElement(node, "Value", number=str(number)).text = str(one)


def _xml_person_name(node: ET.Element, number: int, value: str) -> None:
    name = ET.SubElement(node, "PersonName", number=str(number))
    groups = ("Alphabetic", "Ideographic", "Phonetic")
    for group, text in zip(groups, value.split("="), strict=False):
        if not text:
            continue
        group_node = ET.SubElement(name, group)
        for component, part in zip(_PN_COMPONENTS, text.split("^"), strict=False):
            if part:
                ET.SubElement(group_node, component).text = part


def native_xml(ds: Dataset) -> bytes:
    """One dataset as a PS3.19 NativeDicomModel document, UTF-8."""
    root = ET.Element("NativeDicomModel", xmlns=_NATIVE_NS)
    _xml_attributes(root, ds)
    text = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode("utf-8")


# --- bodies ---------------------------------------------------------------------------------


def render(datasets: Iterable[Dataset], media: MediaType) -> tuple[bytes, str]:
    """The body and Content-Type of a list of datasets in the negotiated format."""
    if not media.multipart:
        body = json.dumps([ds.to_json_dict() for ds in datasets], ensure_ascii=False)
        return body.encode("utf-8"), f"{DICOM_JSON}"
    boundary = uuid.uuid4().hex
    parts = []
    for ds in datasets:
        if media.type == DICOM_JSON:
            payload = json.dumps(ds.to_json_dict(), ensure_ascii=False).encode("utf-8")
        else:
            payload = native_xml(ds)
        parts.append(
            f"--{boundary}\r\nContent-Type: {media.type}\r\n\r\n".encode() + payload + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f'{MULTIPART}; type="{media.type}"; boundary={boundary}'


# --- DICOM JSON straight from a worklist row -------------------------------------------------

_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def _json_values(vr: str, value) -> list:
    if vr == "US":
        return [int(value)]
    texts = value if isinstance(value, list) else str(value).split("\\")
    if vr == "DS":
        return [float(v) for v in texts]
    if vr == "IS":
        return [int(v) for v in texts]
    if vr == "PN":
        return [dict(zip(_PN_GROUPS, v.split("="), strict=False)) for v in texts]
    return list(texts)


def _json_keys(keys, ctx) -> dict:
    out = {}
    for key in keys:
        tag = f"{key.tag:08X}"
        if key.children is not None:
            items = key.attr.get(ctx) if key.attr is not None else []
            out[tag] = {"vr": "SQ", "Value": [_json_keys(key.children, item) for item in items]}
            continue
        value = key.attr.get(ctx) if key.attr is not None else None
        if value is None or value == "":
            out[tag] = {"vr": key.vr}
        else:
            out[tag] = {"vr": key.vr, "Value": _json_values(key.vr, value)}
    return out


def worklist_json(builder, row: dict) -> dict:
    """``builder.dataset(row).to_json_dict()`` without building the pydicom Dataset: the same
    requested keys, getters and character set (``worklist.dicom.ResponseBuilder``), written
    straight as DICOM JSON. pydicom's two steps are most of a broad search's time
    (docs/BENCHMARKS.md, MWL-RS); tests/dicomweb/test_mwl_rs.py holds the two equal."""
    out = {}
    charset = builder.character_set_of(row)
    if charset is not None:
        value = ["", charset] if charset.startswith("ISO 2022") else [charset]
        out["00080005"] = {"vr": "CS", "Value": value}
    out.update(_json_keys(builder.keys, row))
    return out


def render_worklist(builder, rows: list[dict], media: MediaType) -> tuple[bytes, str]:
    """A search answer of worklist rows: the fast DICOM JSON path for JSON, the datasets for
    the multipart forms."""
    if media.multipart:
        return render((builder.dataset(row) for row in rows), media)
    body = json.dumps([worklist_json(builder, row) for row in rows], ensure_ascii=False)
    return body.encode("utf-8"), DICOM_JSON
