"""Loading the procedure catalogue and its stations from a spreadsheet export (CSV).

Header: ``code,scheme,meaning,modality,duration_minutes,stations`` (stations: AE titles separated
by spaces). Re-importing updates rows in place; a bad row is reported with its line number and the
rest still load, because a department's spreadsheet always has one odd line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.db import transaction

from worklist.audit import Actor, record, snapshot
from worklist.models import Device, Modality, ProcedureOrderCode, ProcedureType

REQUIRED_COLUMNS = ("code", "scheme", "meaning", "modality", "duration_minutes", "stations")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    devices_created: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.created + self.updated


class CatalogFormatError(ValueError):
    """The file is not a catalogue; ``missing`` names the required columns it lacks, so a UI
    can say so in its own language."""

    def __init__(self, message: str, *, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing = missing or []


def _ae_title_problem(title: str) -> str | None:
    if len(title) > 16:
        return f"AE title {title!r} is longer than 16 characters"
    if "\\" in title or any(ord(ch) < 32 or ord(ch) > 126 for ch in title):
        return f"AE title {title!r} has characters DICOM does not allow"
    return None


def _row_values(row: dict[str, str]) -> tuple[dict, list[str]]:
    code = (row.get("code") or "").strip()
    scheme = (row.get("scheme") or "").strip() or "L"
    meaning = (row.get("meaning") or "").strip()
    modality = (row.get("modality") or "").strip().upper()
    duration_text = (row.get("duration_minutes") or "").strip()
    stations = (row.get("stations") or "").split()
    if not code:
        raise ValueError("code is empty")
    if len(code) > 16:
        raise ValueError(f"code {code!r} is longer than 16 characters (SH)")
    if not meaning:
        raise ValueError("meaning is empty")
    if len(meaning) > 64:
        raise ValueError("meaning is longer than 64 characters (LO)")
    if modality not in Modality.values:
        raise ValueError(f"modality {modality!r} is not one of {', '.join(Modality.values)}")
    try:
        duration = int(duration_text)
    except ValueError:
        raise ValueError(f"duration_minutes {duration_text!r} is not a whole number") from None
    if duration <= 0 or duration > 24 * 60:
        raise ValueError(f"duration_minutes {duration} is outside 1-1440")
    for title in stations:
        problem = _ae_title_problem(title)
        if problem:
            raise ValueError(problem)
    values = {
        "code_value": code,
        "code_scheme": scheme[:16],
        "code_meaning": meaning,
        "modality": modality,
        "default_duration_minutes": duration,
    }
    return values, stations


@dataclass(frozen=True)
class CatalogRows:
    """A catalogue file whose header was checked: its data rows with their line numbers."""

    rows: list[tuple[int, dict[str, str]]]

    def __len__(self) -> int:
        return len(self.rows)


def read_catalog(source: str | Iterable[str]) -> CatalogRows:
    """Parse the whole file before loading anything.

    A wrong header (``CatalogFormatError``) or broken CSV (``csv.Error``) is reported before a
    single row loads, and the caller knows how many rows there are (the web page's progress).
    """
    text = source if isinstance(source, str) else "".join(source)
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise CatalogFormatError(
            f"the header must be {','.join(REQUIRED_COLUMNS)}; missing: {', '.join(missing)}",
            missing=missing,
        )
    reader.fieldnames = header
    return CatalogRows(list(enumerate(reader, start=2)))  # line 1 is the header


def load_rows(rows: CatalogRows, *, actor: Actor, report: ImportReport) -> Iterator[int]:
    """Load ``rows`` one by one, yielding how many are done after each.

    Each row is its own transaction so one bad row spoils nothing else; its problem goes into
    ``report.errors`` with its line. A generator so that the web page can send its progress
    while the rows load.
    """
    for done, (line, row) in enumerate(rows.rows, start=1):
        try:
            values, stations = _row_values(row)
            with transaction.atomic():
                _load_row(values, stations, actor, report)
        except ValueError as exc:
            report.errors.append((line, str(exc)))
        yield done


def import_catalog(
    source: str | Iterable[str] | CatalogRows,
    *,
    actor: Actor,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Load catalogue rows (see ``load_rows``); ``progress`` gets the rows done so far."""
    rows = source if isinstance(source, CatalogRows) else read_catalog(source)
    report = ImportReport()
    for done in load_rows(rows, actor=actor, report=report):
        if progress is not None:
            progress(done)
    return report


def _load_row(values: dict, stations: list[str], actor: Actor, report: ImportReport) -> None:
    ptype = ProcedureType.objects.filter(
        code_value=values["code_value"], code_scheme=values["code_scheme"]
    ).first()
    if ptype is None:
        ptype = ProcedureType.objects.create(description=values["code_meaning"], **values)
        report.created += 1
        record(actor, "catalog.create", ptype, after=snapshot(ptype))
    else:
        before = snapshot(ptype)
        for key, value in values.items():
            setattr(ptype, key, value)
        ptype.save()
        report.updated += 1
        record(actor, "catalog.update", ptype, before=before, after=snapshot(ptype))
    devices = []
    for title in stations:
        device, created = Device.objects.get_or_create(
            ae_title=title, defaults={"modality": values["modality"], "station_name": title}
        )
        if created:
            report.devices_created.append(title)
            record(actor, "device.create", device, after=snapshot(device))
        devices.append(device)
    ptype.stations.set(devices)
    # The catalogue code doubles as the HL7 order code (OBR-4.1) unless one is mapped already.
    ProcedureOrderCode.objects.get_or_create(
        code=values["code_value"], coding_system="", defaults={"procedure_type": ptype}
    )
