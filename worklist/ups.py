"""Scheduled steps as Unified Procedure Step workitems (PS3.4 Annex CC): the pure mappings.

A step is offered as a UPS Push workitem so that a UPS-capable modality or a post-processing node
can pull and report work over UPS-RS. This module maps only: the workitem's SOP Instance UID to
and from the step, the UPS search keys onto the Modality Worklist identifier that the one
matching engine (``worklist.matching``) answers, and a worklist row onto the workitem data set
(PS3.4 Table CC.2.5-3). State changes are ``worklist.services.step_claim`` / ``step_ups_final``.
"""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone
from pydicom import Dataset
from pydicom.sequence import Sequence

from worklist.dicom import local, person_name
from worklist.states import UPS_STATE_OF_STEP, step_statuses_in_ups_state

UPS_PUSH_SOP_CLASS = "1.2.840.10008.5.1.4.34.6.1"

# A workitem UID is a UUID-derived UID (PS3.5 B.2) whose 128-bit integer is this fixed random
# prefix with the step's primary key in its low 40 bits: unique to ris, stable for the step's
# life, and read back without a lookup table.
_PK_BITS = 40
_PREFIX = 0x6F1D3C2B9A8E4F7D5C6B3A << _PK_BITS  # 88 random bits: 128 in all
_UID = re.compile(r"^2\.25\.(\d{1,39})$")

#: ris's priority (0040,1003) -> Scheduled Procedure Step Priority (0074,1200) of PS3.4 CC.
_PRIORITY = {"STAT": "HIGH", "HIGH": "HIGH", "ROUTINE": "MEDIUM", "MEDIUM": "MEDIUM", "LOW": "LOW"}

SPS = 0x00400100


def workitem_uid(pk: int) -> str:
    """The UPS SOP Instance UID of the step with this primary key."""
    return f"2.25.{_PREFIX | pk}"


def step_pk(uid: str) -> int | None:
    """The primary key of the step a workitem UID names, or None if it names none of ris's."""
    match = _UID.match(uid.strip())
    if match is None:
        return None
    value = int(match.group(1))
    if value >> _PK_BITS != _PREFIX >> _PK_BITS:
        return None
    return value & ((1 << _PK_BITS) - 1)


class UnsupportedKey(ValueError):
    """A UPS matching key ris cannot match on (answered 400 with the attribute named)."""


def _dt_range(text: str) -> tuple[str, str]:
    """A DT value or range (``YYYYMMDD[HHMM[SS]]``, ``a-b``, ``a-``, ``-b``) as the DA and TM
    ranges of the worklist's start date and time, which the engine matches as one date-time."""
    low, sep, high = text.partition("-")

    def split(value: str) -> tuple[str, str]:
        value = re.sub(r"[+-]\d{4}$", "", value.split(".")[0])
        return value[:8], value[8:14]

    (d1, t1), (d2, t2) = split(low), split(high)
    if not sep:
        return d1, t1
    return f"{d1}-{d2}", (f"{t1}-{t2}" if t1 or t2 else "")


def mwl_identifier(keys: dict[str, str]) -> tuple[Dataset, list[int]]:
    """The MWL C-FIND identifier of UPS matching keys (``{"PatientID": "P1", ...}``, dotted
    through sequences), and the primary keys a SOPInstanceUID key names (None: no such key).

    Supported keys: Procedure Step State, SOP Instance UID, Patient's Name/ID/Birth Date/Sex,
    Issuer of Patient ID, Admission ID, Study Instance UID, Scheduled Procedure Step Start
    DateTime, Scheduled Station Name Code Sequence > Code Value (the station's AE title), and
    Referenced Request Sequence > Accession Number / Requested Procedure ID / Study Instance UID.
    """
    ds = Dataset()
    item = Dataset()
    pks: list[int] | None = None
    for name, value in keys.items():
        if name in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex",
                    "IssuerOfPatientID", "AdmissionID", "StudyInstanceUID"):
            setattr(ds, name, value.replace(",", "\\") if name == "StudyInstanceUID" else value)
        elif name in ("ReferencedRequestSequence.AccessionNumber",
                      "ReferencedRequestSequence.RequestedProcedureID",
                      "ReferencedRequestSequence.StudyInstanceUID"):
            setattr(ds, name.split(".")[1], value)
        elif name == "ScheduledStationNameCodeSequence.CodeValue":
            item.ScheduledStationAETitle = value
        elif name == "ScheduledProcedureStepStartDateTime":
            date, time = _dt_range(value)
            item.ScheduledProcedureStepStartDate = date
            if time:
                item.ScheduledProcedureStepStartTime = time
        elif name == "ProcedureStepState":
            statuses = sorted(
                s for state in value.split("\\") for s in step_statuses_in_ups_state(state)
            )
            item.ScheduledProcedureStepStatus = statuses or ["NONE"]
        elif name == "SOPInstanceUID":
            pks = [pk for uid in value.replace("\\", ",").split(",")
                   if (pk := step_pk(uid)) is not None]
        else:
            raise UnsupportedKey(name)
    if "ScheduledProcedureStepStatus" not in item:
        # A workitem search sees every step a UPS state stands for, not the MWL default set.
        item.ScheduledProcedureStepStatus = sorted(UPS_STATE_OF_STEP)
    ds.ScheduledProcedureStepSequence = [item]
    return ds, pks


def _dt(value: dt.datetime | None) -> str:
    value = local(value)
    return value.strftime("%Y%m%d%H%M%S%z") if value is not None else ""


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def workitem(row: dict) -> Dataset:
    """The UPS workitem of a worklist row (``worklist.selectors.worklist_rows``), PS3.4 Table
    CC.2.5-3. The Transaction UID is never part of it (PS3.4 CC.2.5.1.2)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = UPS_PUSH_SOP_CLASS
    ds.SOPInstanceUID = workitem_uid(row["pk"])
    ds.ProcedureStepState = UPS_STATE_OF_STEP.get(row["status"], "SCHEDULED")
    ds.ScheduledProcedureStepPriority = _PRIORITY.get(row["rp_priority"] or "", "MEDIUM")
    ds.ProcedureStepLabel = (row["sps_description"] or row["rp_description"] or "")[:64]
    ds.WorklistLabel = row["station_ae"] or ""
    ds.ScheduledProcedureStepStartDateTime = _dt(row["scheduled_start"])
    ds.ExpectedCompletionDateTime = _dt(row["scheduled_end"])
    ds.ScheduledStationNameCodeSequence = Sequence(
        [_code(row["station_ae"], "L", row["station_name"] or row["station_ae"])]
        if row["station_ae"] else []
    )
    ds.ScheduledWorkitemCodeSequence = Sequence(
        [_code(row["rp_code_value"], row["rp_code_scheme"] or "L",
               row["rp_code_meaning"] or row["rp_code_value"])]
        if row["rp_code_value"] else []
    )
    ds.InputReadinessState = "READY"
    ds.PatientName = person_name(row)
    ds.PatientID = row["patient_id"] or ""
    ds.IssuerOfPatientID = row["issuer"] or ""
    ds.PatientBirthDate = row["birth_date"].strftime("%Y%m%d") if row["birth_date"] else ""
    ds.PatientSex = row["sex"] or ""
    ds.AdmissionID = row["admission_id"] or ""
    ds.StudyInstanceUID = row["study_uid"] or ""
    request = Dataset()
    request.StudyInstanceUID = row["study_uid"] or ""
    request.AccessionNumber = row["accession"] or ""
    request.RequestedProcedureID = row["rp_id"] or ""
    request.RequestedProcedureDescription = row["rp_description"] or ""
    request.PlacerOrderNumberImagingServiceRequest = row["placer_number"] or ""
    request.FillerOrderNumberImagingServiceRequest = row["filler_number"] or ""
    ds.ReferencedRequestSequence = Sequence([request])
    return ds


#: Scheduled Procedure Step Priority (0074,1200) -> ris's priority.
PRIORITY_OF_UPS = {"HIGH": "STAT", "MEDIUM": "ROUTINE", "LOW": "ROUTINE"}


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    sequence = ds.get(keyword)
    return sequence[0] if sequence else None


def _str(ds: Dataset | None, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip() if ds is not None else ""


def parse_dt(text: str) -> dt.datetime | None:
    """A DT value (``YYYYMMDDHHMM[SS[.f]][&ZZXX]``) as an aware datetime (local time without an
    offset), None when empty; ValueError when it is no DT."""
    text = text.strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d{8})(\d{2})?(\d{2})?(\d{2})?(?:\.\d{1,6})?([+-]\d{4})?", text)
    if match is None:
        raise ValueError(f"{text!r} is not a DICOM date-time")
    date, hour, minute, second, offset = match.groups()
    value = dt.datetime.strptime(
        date + (hour or "00") + (minute or "00") + (second or "00"), "%Y%m%d%H%M%S"
    )
    if offset:
        sign = 1 if offset[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:])))
        return value.replace(tzinfo=tz)
    return timezone.make_aware(value)


def create_request(ds: Dataset) -> dict:
    """What a UPS-RS Create Workitem (PS3.4 CC.2.5.1.3) asks ris to book, as plain values:
    the patient, the procedure code (the catalogue's), the station (Scheduled Station Name Code
    Sequence > Code Value: its AE title), the start, the priority and an accession number an
    upstream scheduler assigned (Referenced Request Sequence). ValueError names what is missing.
    """
    state = _str(ds, "ProcedureStepState") or "SCHEDULED"
    if state != "SCHEDULED":
        raise ValueError("a new workitem's Procedure Step State must be SCHEDULED")
    code = _first(ds, "ScheduledWorkitemCodeSequence")
    station = _first(ds, "ScheduledStationNameCodeSequence")
    request = _first(ds, "ReferencedRequestSequence")
    values = {
        "patient_id": _str(ds, "PatientID"),
        "issuer": _str(ds, "IssuerOfPatientID"),
        "patient_name": _str(ds, "PatientName"),
        "birth_date": _str(ds, "PatientBirthDate"),
        "sex": _str(ds, "PatientSex"),
        "procedure_code": _str(code, "CodeValue"),
        "station_ae": _str(station, "CodeValue"),
        "start": parse_dt(_str(ds, "ScheduledProcedureStepStartDateTime")),
        "priority": PRIORITY_OF_UPS.get(_str(ds, "ScheduledProcedureStepPriority"), "ROUTINE"),
        "accession_number": _str(request, "AccessionNumber"),
        "label": _str(ds, "ProcedureStepLabel"),
    }
    for key, name in (("patient_id", "Patient ID (0010,0020)"),
                      ("procedure_code", "Scheduled Workitem Code Sequence > Code Value"),
                      ("start", "Scheduled Procedure Step Start DateTime (0040,4005)")):
        if not values[key]:
            raise ValueError(f"{name} is required to create a workitem")
    return values


def update_request(ds: Dataset) -> dict:
    """What a UPS-RS Update Workitem (PS3.4 CC.2.6) may change in ris: a SCHEDULED workitem's
    start and station (a move, through the scheduling service), a claimed one's progress
    (Procedure Step Progress Information Sequence). Anything else is refused by name."""
    allowed = {"ScheduledProcedureStepStartDateTime", "ScheduledStationNameCodeSequence",
               "ProcedureStepProgressInformationSequence", "TransactionUID",
               "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID"}
    other = sorted(elem.keyword or f"{elem.tag:08X}" for elem in ds if elem.keyword not in allowed)
    if other:
        raise ValueError(f"ris does not update {', '.join(other)} of a workitem")
    station = _first(ds, "ScheduledStationNameCodeSequence")
    progress = _first(ds, "ProcedureStepProgressInformationSequence")
    return {
        "start": parse_dt(_str(ds, "ScheduledProcedureStepStartDateTime")),
        "station_ae": _str(station, "CodeValue"),
        "progress": None if progress is None else {
            # DS as written (50, not pydicom's 50.0): a percentage the performer chose
            "progress": format(float(progress.ProcedureStepProgress), "g")
            if progress.get("ProcedureStepProgress") is not None else "",
            "description": _str(progress, "ProcedureStepProgressDescription"),
        },
    }


#: Event Type ID (0000,1002) of the UPS event reports (PS3.4 Table CC.2.4-1).
STATE_REPORT, CANCEL_REQUESTED, PROGRESS_REPORT = 1, 2, 3


def event_report(uid: str, event_type: int, info: dict[str, str]) -> Dataset:
    """A UPS event report as the UPS-RS event channel sends it (PS3.18 11.x, the N-EVENT-REPORT
    of PS3.4 CC.2.4 in DICOM JSON): Affected SOP Class and Instance UID, Event Type ID, and the
    event information (state, readiness, cancellation reason, progress)."""
    ds = Dataset()
    ds.AffectedSOPClassUID = UPS_PUSH_SOP_CLASS
    ds.AffectedSOPInstanceUID = uid
    ds.EventTypeID = event_type
    if event_type == STATE_REPORT:
        ds.ProcedureStepState = info["state"]
        ds.InputReadinessState = "READY"
    elif event_type == CANCEL_REQUESTED:
        ds.RequestingAE = info.get("requesting_ae", "")[:16]
        ds.ReasonForCancellation = info.get("reason", "")[:64]
        if info.get("contact_name"):
            ds.ContactDisplayName = info["contact_name"][:64]
        if info.get("contact_uri"):
            ds.ContactURI = info["contact_uri"]
    elif event_type == PROGRESS_REPORT:
        item = Dataset()
        if info.get("progress"):
            item.ProcedureStepProgress = info["progress"]
        if info.get("description"):
            item.ProcedureStepProgressDescription = info["description"][:64]
        ds.ProcedureStepProgressInformationSequence = [item]
    return ds
