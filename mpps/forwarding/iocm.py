"""IHE IOCM rejection notes: the Key Object Selection a corrected study is announced with.

When staff link a study to another order (``services.study_link``), an archive that takes part
in IHE Imaging Object Change Management (RAD-TF IOCM, the Rejection Note Stored transaction)
gets the corrected copies under new UIDs and this note, which names every instance it holds
under the wrong identity. Its document title is (113038, DCM, "Incorrect Modality Worklist
Entry") from CID 7011 (PS3.16 "Rejected Objects": 113001 quality, 113037 patient safety, 113038
wrong worklist entry, 113039 retention expired): the archive then hides the rejected instances.

The note is a Key Object Selection Document (PS3.3 A.35.4, template TID 2010) in the study and
under the patient identity of the instances it rejects, as the archive filed them, and lists
them twice: in the content tree (one IMAGE or COMPOSITE item each) and in the Current Requested
Procedure Evidence Sequence. Pure function: no database, no network.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from copy import deepcopy
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
#: CID 7011 "Rejected Objects": the title of a note for a study linked to the right order.
INCORRECT_MODALITY_WORKLIST_ENTRY = ("113038", "DCM", "Incorrect Modality Worklist Entry")
#: Attributes copied from a rejected instance: the note must be filed where they are (Patient,
#: General Study modules).
_FROM_REJECTED = (
    "SpecificCharacterSet",
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
@dataclass(frozen=True)
class Rejected:
    """One instance the note rejects, as the archive holds it."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _is_image(sop_class_uid: str) -> bool:
    """Image Storage SOP classes are referenced by IMAGE content items, others by COMPOSITE
    (TID 2010)."""
    return "Image Storage" in UID(sop_class_uid).name


def header_of(ds: Dataset) -> Dataset:
    """The patient and study attributes of ``ds`` a rejection note of it is filed under."""
    header = Dataset()
    for keyword in _FROM_REJECTED:
        if keyword in ds:
            header[keyword] = deepcopy(ds[keyword])
    return header


def rejection_note(
    *,
    rejected: list[Rejected],
    header: Dataset,
    series_uid: str,
    sop_uid: str,
    manufacturer: str,
    station_name: str,
    description: str = "",
    now: dt.datetime | None = None,
) -> Dataset:
    """The IOCM rejection note for ``rejected`` (all of one study), filed under ``header``'s
    patient and study (one of the rejected instances as the archive holds it); with file meta,
    ready for the spool."""
    if not rejected:
        raise ValueError("a rejection note names at least one instance")
    now = now or dt.datetime.now()
    ds = Dataset()
    for keyword in _FROM_REJECTED:
        if keyword in header:
            ds[keyword] = header[keyword]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword not in ds:  # type 2 in the Patient and General Study modules
            setattr(ds, keyword, "")
    ds.SOPClassUID = KEY_OBJECT_SELECTION
    ds.SOPInstanceUID = sop_uid
    # Key Object Document Series (PS3.3 C.17.6.1): its own series, modality KO.
    ds.Modality = "KO"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 9999
    ds.SeriesDescription = "Rejection note"
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    # General Equipment
    ds.Manufacturer = manufacturer[:64]
    ds.StationName = station_name[:16]
    # Key Object Document (PS3.3 C.17.6.2)
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    # SR Document Content: the root CONTAINER titled from CID 7011 (TID 2010).
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([_code(*INCORRECT_MODALITY_WORKLIST_ENTRY)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = Sequence([template])
    items = []
    if description:
        text = Dataset()
        text.RelationshipType = "CONTAINS"
        text.ValueType = "TEXT"
        text.ConceptNameCodeSequence = Sequence([_code("113012", "DCM", "Key Object Description")])
        text.TextValue = description[:1024]
        items.append(text)
    for instance in rejected:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "IMAGE" if _is_image(instance.sop_class_uid) else "COMPOSITE"
        ref = Dataset()
        ref.ReferencedSOPClassUID = instance.sop_class_uid
        ref.ReferencedSOPInstanceUID = instance.sop_instance_uid
        item.ReferencedSOPSequence = Sequence([ref])
        items.append(item)
    ds.ContentSequence = Sequence(items)
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([_evidence(header, rejected)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = KEY_OBJECT_SELECTION
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _evidence(header: Dataset, rejected: list[Rejected]) -> Dataset:
    """Hierarchical SOP Instance Reference Macro (PS3.3 Table C.17-3) of the study."""
    by_series: dict[str, list[Rejected]] = defaultdict(list)
    for instance in rejected:
        by_series[instance.series_instance_uid].append(instance)
    study = Dataset()
    study.StudyInstanceUID = header.StudyInstanceUID
    series_items = []
    for series_uid, instances in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        refs = []
        for instance in instances:
            ref = Dataset()
            ref.ReferencedSOPClassUID = instance.sop_class_uid
            ref.ReferencedSOPInstanceUID = instance.sop_instance_uid
            refs.append(ref)
        series.ReferencedSOPSequence = Sequence(refs)
        series_items.append(series)
    study.ReferencedSeriesSequence = Sequence(series_items)
    return study
