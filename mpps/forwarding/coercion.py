"""Attribute coercion of gateway instances to their order (IHE RAD TF-2 4.8 / 4.10 "coercion").

A modality that did not use the worklist (or typed the patient by hand) sends images whose patient
and order attributes differ from the RIS's. Before they reach the PACS, the Patient and Request
attributes are replaced by the order's, and every value replaced is kept in the Original Attributes
Sequence (0400,0561), PS3.3 C.12.1.1.9, reason "COERCE", so nothing the modality said is lost.

The order's values come from the worklist mapping (``worklist.dicom``): the same Patient's Name,
Patient ID, Accession Number... the modality would have received by MWL. An order value that is
empty never blanks what the modality sent (a missing birth date in the HIS is not a correction).
"""

from __future__ import annotations

import datetime as dt
from copy import deepcopy

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.sequence import Sequence

from worklist.dicom import ResponseBuilder, response_character_set, row_for_step

#: Top-level attributes set to the order's value (PS3.3 Patient and General Study modules).
COERCED = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "RequestedProcedureID",
)
#: Items of the Request Attributes Sequence (0040,0275), PS3.3 Table 10-9 (Request Attributes
#: Macro): from the requested procedure, then from the scheduled step.
_REQUEST_FROM_PROCEDURE = (
    "RequestedProcedureID",
    "AccessionNumber",
    "StudyInstanceUID",
    "RequestedProcedureDescription",
    "RequestedProcedureCodeSequence",
    "ReasonForTheRequestedProcedure",
)
_REQUEST_FROM_STEP = (
    "ScheduledProcedureStepID",
    "ScheduledProcedureStepDescription",
    "ScheduledProtocolCodeSequence",
)


#: Reasons for the Attribute Modification (0400,0565), PS3.3 C.12.1.1.9.2.
COERCE = "COERCE"
CORRECT = "CORRECT"
#: The UIDs a corrected copy for an IOCM archive gets anew (``reidentify``).
IDENTITY_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def _query(character_set: str) -> Dataset:
    """The C-FIND-like identifier asking ``worklist.dicom`` for exactly what coercion needs."""
    query = Dataset()
    query.SpecificCharacterSet = character_set
    for keyword in {*COERCED, *_REQUEST_FROM_PROCEDURE}:
        if dictionary_VR(tag_for_keyword(keyword)) == "SQ":
            setattr(query, keyword, [])
        else:
            setattr(query, keyword, None)
    step = Dataset()
    for keyword in _REQUEST_FROM_STEP:
        setattr(step, keyword, [] if keyword.endswith("Sequence") else None)
    query.ScheduledProcedureStepSequence = [step]
    return query


def order_values(step, character_set: str) -> Dataset:
    """The order's attributes for ``step`` from the worklist mapping (``worklist.dicom``)."""
    wanted = character_set or "ISO_IR 6"
    return ResponseBuilder(_query(wanted), character_set=wanted).dataset(row_for_step(step))


def request_attributes_item(order: Dataset) -> Dataset:
    item = Dataset()
    for keyword in _REQUEST_FROM_PROCEDURE:
        if keyword in order:
            item[keyword] = deepcopy(order[keyword])
    sps = order.ScheduledProcedureStepSequence[0]
    for keyword in _REQUEST_FROM_STEP:
        if keyword in sps:
            item[keyword] = deepcopy(sps[keyword])
    return item


def charset_of(ds: Dataset) -> str:
    value = ds.get("SpecificCharacterSet", "")
    if isinstance(value, list | tuple):  # ISO 2022: the last term is the extension in use
        return value[-1] if value else ""
    return str(value or "")


def _same(old, new) -> bool:
    return str(old if old is not None else "") == str(new if new is not None else "")


def _has_request(ds: Dataset, item: Dataset) -> bool:
    for existing in ds.get("RequestAttributesSequence", []):
        if existing.get("RequestedProcedureID", "") == item.get(
            "RequestedProcedureID", ""
        ) and existing.get("ScheduledProcedureStepID", "") == item.get(
            "ScheduledProcedureStepID", ""
        ):
            return True
    return False


def coerce(
    ds: Dataset,
    step,
    *,
    modifying_system: str,
    source: str,
    now: dt.datetime | None = None,
    order: Dataset | None = None,
    reason: str = COERCE,
) -> dict[str, list[str]]:
    """Set ``ds``'s patient and request attributes to ``step``'s order; returns what changed
    as ``{keyword: [old, new]}`` (empty: the instance already agreed with the order).

    ``order`` is ``order_values(step, <ds's character set>)`` when the caller has it already.
    ``reason`` is the Reason for the Attribute Modification (0400,0565), PS3.3 C.12.1.1.9.2:
    ``COERCE`` at reception (the gateway imposes the RIS's values), ``CORRECT`` when staff link a
    study to the right order afterwards (the values it carried were wrong).
    """
    if order is None:
        order = order_values(step, charset_of(ds))
    originals = Dataset()
    changes: dict[str, list[str]] = {}
    updates: list[tuple[str, object]] = []
    for keyword in COERCED:
        new = order.get(keyword)
        if new in (None, ""):
            continue
        old = ds.get(keyword)
        if _same(old, new):
            continue
        updates.append((keyword, new))
        changes[keyword] = [str(old or ""), str(new)]
    request_item = request_attributes_item(order)
    replace_request = not _has_request(ds, request_item)
    if not updates and not replace_request:
        return {}
    needed = response_character_set(
        [str(v) for _, v in updates] + _strings(request_item), charset_of(ds)
    )
    if needed is not None and needed != charset_of(ds):
        # The instance's character set cannot hold the order's names (e.g. a Latin-1 modality
        # and a Chinese name): decode everything and write the instance in UTF-8.
        ds.decode()
        ds.SpecificCharacterSet = needed
    for keyword, _new in updates:
        if keyword in ds:
            originals[keyword] = deepcopy(ds[keyword])
        else:
            originals.add_new(
                tag_for_keyword(keyword), dictionary_VR(tag_for_keyword(keyword)), None
            )
    for keyword, new in updates:
        setattr(ds, keyword, new)
    if replace_request:
        if "RequestAttributesSequence" in ds:
            originals.RequestAttributesSequence = deepcopy(ds.RequestAttributesSequence)
        else:
            originals.RequestAttributesSequence = Sequence()
        ds.RequestAttributesSequence = Sequence([request_item])
        changes["RequestAttributesSequence"] = [
            "",
            f"{request_item.get('RequestedProcedureID', '')}/"
            f"{request_item.get('ScheduledProcedureStepID', '')}",
        ]
    _append_record(
        ds, originals, modifying_system=modifying_system, source=source, reason=reason, now=now
    )
    return changes


def _append_record(
    ds: Dataset,
    originals: Dataset,
    *,
    modifying_system: str,
    source: str,
    reason: str,
    now: dt.datetime | None = None,
) -> None:
    """One more item of the Original Attributes Sequence (PS3.3 C.12.1.1.9): ``originals``
    holds the values replaced, the item says when, by whom, from where and why."""
    record = Dataset()
    record.AttributeModificationDateTime = (now or dt.datetime.now(dt.UTC)).strftime(
        "%Y%m%d%H%M%S.%f+0000"
    )
    record.ModifyingSystem = modifying_system[:64]
    record.SourceOfPreviousValues = source[:64]
    record.ReasonForTheAttributeModification = reason
    record.ModifiedAttributesSequence = Sequence([originals])
    history = list(ds.get("OriginalAttributesSequence", []))
    ds.OriginalAttributesSequence = Sequence([*history, record])


def _strings(item: Dataset) -> list[str]:
    out: list[str] = []
    for elem in item.iterall():
        if isinstance(elem.value, str):
            out.append(elem.value)
    return out


def reidentify(
    ds: Dataset,
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    modifying_system: str,
    source: str,
    amend_last: bool,
) -> dict[str, str]:
    """Give ``ds`` new Study, Series and SOP Instance UIDs (a corrected copy for an IOCM
    archive, which hides every instance its rejection note names: the copy must not be one of
    them). The old UIDs join the Modified Attributes of the last Original Attributes item when
    ``amend_last`` (the correction ``coerce`` just recorded), else a new ``CORRECT`` item, so
    the copy says which instance it replaces. Returns the old UIDs by keyword.
    """
    old = {keyword: str(ds.get(keyword, "")) for keyword in IDENTITY_UIDS}
    replaced = Dataset()
    for keyword in IDENTITY_UIDS:
        if keyword in ds:
            replaced[keyword] = deepcopy(ds[keyword])
    history = ds.get("OriginalAttributesSequence")
    if amend_last and history:
        modified = history[-1].ModifiedAttributesSequence[0]
        for element in replaced:
            modified[element.tag] = element
    else:
        _append_record(
            ds, replaced, modifying_system=modifying_system, source=source, reason=CORRECT
        )
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop_uid
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        meta.MediaStorageSOPInstanceUID = sop_uid
    return old
