"""Importing DICOM worklist files (``.wl``, as DCMTK wlmscpfs and Orthanc's worklist plugin keep
them): the migration path off a file-based worklist.

Each file is one worklist item: patient, order, requested procedure and one scheduled step. It is
read with its own Specific Character Set, mapped to the domain here, and written through
``worklist.services`` (patient_upsert, visit_upsert, order_import), one savepoint per file: a bad
file is reported by name and skipped, re-importing a file changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from worklist import audit, pn, services
from worklist.age import AGE_STRING
from worklist.audit import Actor
from worklist.dicom import department_zone
from worklist.errors import DomainError
from worklist.models import Device, Patient, Priority, ProcedureType, StepStatus

BATCH = 200


class WorklistFileError(ValueError):
    pass


@dataclass
class ImportReport:
    created: int = 0
    unchanged: int = 0
    #: found again with another station or time (the step followed the file)
    updated: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    stations_created: list[str] = field(default_factory=list)


def worklist_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named on the command line as they are; folders searched for ``*.wl`` (any case)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".wl"
            )
        else:
            yield path


def _text(ds: Dataset, keyword: str, limit: int | None = None) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    text = str(value).strip()
    if limit is not None and len(text) > limit:
        raise WorklistFileError(f"{keyword} {text!r} is longer than {limit} characters")
    return text


def _age(ds: Dataset) -> str:
    text = _text(ds, "PatientAge")
    if not AGE_STRING.match(text):
        return ""
    return text


def _date(ds: Dataset, keyword: str) -> dt.date | None:
    text = _text(ds, keyword).replace(".", "")
    if not text:
        return None
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        raise WorklistFileError(f"{keyword} {text!r} is not a date") from None


def _time(ds: Dataset, keyword: str) -> dt.time | None:
    text = _text(ds, keyword).replace(":", "")
    if not text:
        return None
    main, _, frac = text.partition(".")
    try:
        hour = int(main[0:2])
        minute = int(main[2:4] or 0)
        second = int(main[4:6] or 0)
        micro = int(frac[:6].ljust(6, "0")) if frac else 0
        return dt.time(hour, minute, min(second, 59), micro)
    except ValueError:
        raise WorklistFileError(f"{keyword} {text!r} is not a time") from None


def _decimal(ds: Dataset, keyword: str) -> Decimal | None:
    text = _text(ds, keyword)
    if not text:
        return None
    try:
        # The model keeps two decimals: quantised here, re-importing compares equal.
        return Decimal(text).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise WorklistFileError(f"{keyword} {text!r} is not a number") from None


def _codes(ds: Dataset, keyword: str) -> list[dict]:
    codes = []
    for item in ds.get(keyword) or []:
        code = {
            "value": _text(item, "CodeValue"),
            "scheme": _text(item, "CodingSchemeDesignator"),
            "meaning": _text(item, "CodeMeaning"),
        }
        version = _text(item, "CodingSchemeVersion")
        if version:
            code["version"] = version
        codes.append(code)
    return codes


def _derived_uid(*parts: str) -> str:
    """A stable UID for an item that has none, so that re-importing it finds it again."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _station_titles(sps: Dataset) -> list[str]:
    """Scheduled Station AE Title (0040,0001) may have several values (VM 1-n): each one."""
    value = sps.get("ScheduledStationAETitle")
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, MultiValue) else str(value).split("\\")
    titles = []
    for title in (str(v).strip() for v in values):
        if title and title not in titles:
            titles.append(title)
    return titles


def _station(ae_title: str, sps: Dataset, actor: Actor, report: ImportReport) -> Device | None:
    if not ae_title:
        return None
    if len(ae_title) > 16 or "\\" in ae_title:
        raise WorklistFileError(f"Scheduled Station AE Title {ae_title!r} is not an AE title")
    device = Device.objects.filter(ae_title=ae_title).first()
    if device is None:
        device = Device.objects.create(
            ae_title=ae_title,
            modality=_text(sps, "Modality"),
            station_name=_text(sps, "ScheduledStationName")[:16],
            location=_text(sps, "ScheduledProcedureStepLocation")[:16],
        )
        audit.record(actor, "device.create", device, after=audit.snapshot(device))
        report.stations_created.append(ae_title)
    return device


def _pregnancy(ds: Dataset) -> int | None:
    value = ds.get("PregnancyStatus")
    if value in (None, ""):
        return None
    if int(value) not in Patient.Pregnancy.values:
        raise WorklistFileError(f"Pregnancy Status {value} is not 1-4")
    return int(value)


def import_dataset(ds: Dataset, *, name: str, actor: Actor, report: ImportReport) -> str:
    """Import one worklist item: ``services.IMPORT_CREATED``, ``_UPDATED`` or ``_UNCHANGED``.
    Raises WorklistFileError/DomainError."""
    sps_items = ds.get("ScheduledProcedureStepSequence")
    if not sps_items:
        raise WorklistFileError("no Scheduled Procedure Step Sequence: not a worklist item")
    sps = sps_items[0]
    patient_id = _text(ds, "PatientID", 64)
    if not patient_id:
        raise WorklistFileError("no Patient ID")
    day = _date(sps, "ScheduledProcedureStepStartDate")
    if day is None:
        raise WorklistFileError("no Scheduled Procedure Step Start Date")
    start = timezone.make_aware(
        dt.datetime.combine(day, _time(sps, "ScheduledProcedureStepStartTime") or dt.time(0)),
        department_zone(),
    )
    end_day = _date(sps, "ScheduledProcedureStepEndDate")
    end = None
    if end_day is not None:
        end_time = _time(sps, "ScheduledProcedureStepEndTime") or dt.time(0)
        end = timezone.make_aware(dt.datetime.combine(end_day, end_time), department_zone())
        if end <= start:
            end = None
    other_ids = [
        {
            "id": _text(item, "PatientID"),
            "issuer": _text(item, "IssuerOfPatientID"),
            "type": _text(item, "TypeOfPatientID"),
        }
        for item in ds.get("OtherPatientIDsSequence") or []
    ]
    demographics = {
        "birth_date": _date(ds, "PatientBirthDate"),
        # Patient's Age of a file without a birth date (worklist.age): kept, not made a date.
        "age": _age(ds),
        "sex": _text(ds, "PatientSex")[:1] if _text(ds, "PatientSex") in ("M", "F", "O") else "",
        "weight_kg": _decimal(ds, "PatientWeight"),
        "size_m": _decimal(ds, "PatientSize"),
        "medical_alerts": _text(ds, "MedicalAlerts")[:64],
        "allergies": _text(ds, "Allergies")[:64],
        "pregnancy_status": _pregnancy(ds),
        "patient_state": _text(ds, "PatientState")[:64],
        "special_needs": _text(ds, "SpecialNeeds")[:64],
        "confidentiality": _text(ds, "ConfidentialityConstraintOnPatientDataDescription")[:64],
        "additional_history": _text(ds, "AdditionalPatientHistory"),
        "other_ids": other_ids,
    }
    name_value = ds.get("PatientName")
    patient, _ = services.patient_upsert(
        patient_id=patient_id,
        issuer=_text(ds, "IssuerOfPatientID", 64),
        # worklist.pn places a Hanzi-only single group and derives its Pinyin (flagged derived).
        name=pn.PersonName.parse(str(name_value) if name_value is not None else ""),
        actor=actor,
        **demographics,
    )
    visit = None
    admission_id = _text(ds, "AdmissionID", 64)
    location = _text(ds, "CurrentPatientLocation", 64)
    if admission_id or location:
        visit = services.visit_upsert(
            patient=patient, admission_id=admission_id, actor=actor, assigned_location=location
        )
    rp_codes = _codes(ds, "RequestedProcedureCodeSequence")
    rp_code = rp_codes[0] if rp_codes else {"value": "", "scheme": "", "meaning": ""}
    procedure_type = None
    if rp_code["value"]:
        procedure_type = ProcedureType.objects.filter(
            code_value=rp_code["value"], code_scheme=rp_code["scheme"] or "L"
        ).first()
    priority = _text(ds, "RequestedProcedurePriority").upper()
    priority = priority if priority in Priority.values else Priority.ROUTINE
    accession = _text(ds, "AccessionNumber", 16)
    rp_id = _text(ds, "RequestedProcedureID", 16)
    sps_id = _text(sps, "ScheduledProcedureStepID", 16)
    study_uid = _text(ds, "StudyInstanceUID", 64) or _derived_uid(
        patient_id, accession, rp_id, sps_id, start.isoformat()
    )
    status = _text(sps, "ScheduledProcedureStepStatus").upper() or StepStatus.SCHEDULED
    # A multi-valued station AE (``CT1\\CT2``): wlmscpfs serves the one item to each of the
    # stations; ris's step has one station, so each station gets a step of the same requested
    # procedure (docs/conformance.md).
    stations = [_station(t, sps, actor, report) for t in _station_titles(sps)]
    entry = services.ImportedStep(
        accession_number=accession,
        requested_procedure_id=rp_id,
        sps_id=sps_id,
        study_instance_uid=study_uid,
        scheduled_start=start,
        scheduled_end=end,
        station=stations[0] if stations else None,
        more_stations=stations[1:],
        status=status,
        order={
            "requesting_physician": str(ds.get("RequestingPhysician") or "")[:200],
            "referring_physician": str(ds.get("ReferringPhysicianName") or "")[:200],
            "requesting_service": _text(ds, "RequestingService")[:64],
            "placer_order_number": _text(ds, "PlacerOrderNumberImagingServiceRequest")[:64],
            "filler_order_number": _text(ds, "FillerOrderNumberImagingServiceRequest")[:64],
            "reason": _text(ds, "ReasonForTheRequestedProcedure")[:64],
            "comments": _text(ds, "ImagingServiceRequestComments"),
            "priority": priority,
        },
        procedure={
            "procedure_type": procedure_type,
            "description": _text(ds, "RequestedProcedureDescription")[:64],
            "code_value": rp_code["value"][:16],
            "code_scheme": rp_code["scheme"][:16],
            "code_meaning": rp_code["meaning"][:64],
            "priority": priority,
            "transport_arrangements": _text(ds, "PatientTransportArrangements")[:64],
        },
        step={
            "modality": _text(sps, "Modality")[:16],
            "performing_physician": str(sps.get("ScheduledPerformingPhysicianName") or "")[:200],
            "description": _text(sps, "ScheduledProcedureStepDescription")[:64],
            "protocol_codes": _codes(sps, "ScheduledProtocolCodeSequence"),
            "location": _text(sps, "ScheduledProcedureStepLocation")[:16],
            "pre_medication": _text(sps, "PreMedication")[:64],
            "contrast_agent": _text(sps, "RequestedContrastAgent")[:64],
            "expected_duration_minutes": procedure_type.default_duration_minutes
            if procedure_type
            else 15,
        },
    )
    _, outcome = services.order_import(patient=patient, entry=entry, actor=actor, visit=visit)
    return outcome


def read_worklist_file(path: Path) -> Dataset:
    try:
        ds = dcmread(path, force=True)
        list(ds)  # decode now: a truncated file fails here, not half-way through the import
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise WorklistFileError(f"not a DICOM file: {exc}") from None
    if "ScheduledProcedureStepSequence" not in ds:
        raise WorklistFileError("no Scheduled Procedure Step Sequence: not a worklist item")
    return ds


def import_worklist(
    paths: Iterable[Path],
    *,
    actor: Actor,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import every worklist file of ``paths`` (files or folders).

    Files are committed in batches of ``BATCH`` (one fsync each, not one per file), each file in
    its own savepoint so that a bad one rolls back alone.
    """
    files = list(worklist_files(paths))
    report = ImportReport()
    for start in range(0, len(files), BATCH):
        with transaction.atomic():
            for index, path in enumerate(files[start : start + BATCH], start=start + 1):
                try:
                    ds = read_worklist_file(path)
                    with transaction.atomic():
                        outcome = import_dataset(ds, name=str(path), actor=actor, report=report)
                    if outcome == services.IMPORT_CREATED:
                        report.created += 1
                    elif outcome == services.IMPORT_UPDATED:
                        report.updated += 1
                    else:
                        report.unchanged += 1
                except (WorklistFileError, DomainError, ValueError, TypeError) as exc:
                    report.errors.append((str(path), getattr(exc, "message", None) or str(exc)))
                if progress is not None:
                    progress(index, len(files))
    return report
