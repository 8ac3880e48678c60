"""Reads of the worklist domain for the interfaces (DICOM, API, web): no writes here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.conf import settings
from pydicom import Dataset

from worklist.dicom import ROW_FIELDS, ResponseBuilder
from worklist.matching import WorklistQuery, worklist_query
from worklist.models import Device, Patient
from worklist.pn import PersonName

_NAMES = tuple(ROW_FIELDS)


def worklist_rows(query: WorklistQuery, *, limit: int | None = None) -> Iterator[dict]:
    """The rows of a worklist query in schedule order, at most ``limit`` (None: all).

    Without a Python refinement the limit is the SQL LIMIT; with one, rows stream from the one
    query in chunks and stop as soon as ``limit`` of them passed it.
    """
    qs = query.queryset
    if not query.predicates:
        rows = qs if limit is None else qs[:limit]
        for values in rows:
            yield dict(zip(_NAMES, values, strict=True))
        return
    count = 0
    for values in qs.iterator(chunk_size=1000):
        row = dict(zip(_NAMES, values, strict=True))
        if query.accepts(row):
            yield row
            count += 1
            if limit is not None and count >= limit:
                return


def device_for_ae(ae_title: str) -> Device | None:
    """The active Device with this AE title (DICOM AE titles compare without padding)."""
    return Device.objects.filter(ae_title=ae_title.strip(), active=True).first()


def known_ae_titles() -> list[str]:
    """AE titles of the active Devices: who may open an association when RIS_DICOM_REQUIRE_KNOWN_AE
    is on."""
    return list(Device.objects.filter(active=True).values_list("ae_title", flat=True))


def worklist_responses(
    identifier: Dataset,
    *,
    character_set: str | None = None,
    station_ae: str | None = None,
    limit: int | None = None,
) -> Iterator[Dataset]:
    """The C-FIND answer to a worklist identifier as datasets, for callers other than the SCP
    (the REST API, tools): the same matching and the same requested-keys projection.

    Raises ``worklist.matching.MatchError`` for an identifier that cannot be matched.
    """
    query = worklist_query(identifier, station_ae=station_ae)
    builder = ResponseBuilder(
        identifier, character_set=character_set or settings.RIS_MWL_DEFAULT_CHARACTER_SET
    )
    for row in worklist_rows(query, limit=limit):
        yield builder.dataset(row)


def possible_duplicates(
    *, name: PersonName, birth_date: dt.date | None, limit: int = 10
) -> list[Patient]:
    """Registered patients with the same birth date and the same name in any component group.

    The front desk sees them before registering someone new: the same person registered twice
    gets two patient IDs, and their images end up split across two folders at the PACS. Names
    compare without case and without the spaces clerks type around components.
    """
    if birth_date is None:
        return []
    wanted = {
        "^".join(part.strip().casefold() for part in group.split("^"))
        for group in name.groups
        if group
    }
    if not wanted:
        return []
    candidates = Patient.objects.filter(birth_date=birth_date, merged_into__isnull=True).order_by(
        "patient_id"
    )
    found = []
    for patient in candidates[:500]:  # one birth date: a handful of rows, index-backed
        groups = {g.casefold() for g in patient.person_name.groups if g}
        if groups & wanted:
            found.append(patient)
            if len(found) >= limit:
                break
    return found
