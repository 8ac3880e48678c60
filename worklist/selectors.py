"""Reads of the worklist domain for the interfaces (DICOM, API, web): no writes here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Coalesce
from pydicom import Dataset

from worklist import pn
from worklist.dicom import ITEM, ROW_FIELDS, SPS_SEQUENCE, ResponseBuilder
from worklist.matching import WorklistQuery, worklist_query
from worklist.models import Device, Patient, PatientNameKey, ScheduledProcedureStep
from worklist.pn import PersonName
from worklist.states import UPS_STATE_OF_STEP

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


def device_for_user(user) -> Device | None:
    """The active Device an API account stands for (``Device.api_user``): a web client's
    calling AE title, since HTTP has none."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return Device.objects.filter(api_user=user, active=True).first()


def unsupported_keys(identifier: Dataset) -> list[int]:
    """Tags of the keys of an identifier that ris does not support (returned empty: the C-FIND
    Pending warning FF01H of PS3.4 K.4.1.1.4, a Warning header over HTTP). Inside the Scheduled
    Procedure Step Sequence item its own unsupported keys count too."""
    found = []
    for elem in identifier:
        tag = int(elem.tag)
        if tag == 0x00080005 or elem.tag.is_private:
            continue
        if tag not in ITEM:
            found.append(tag)
        elif tag == SPS_SEQUENCE and elem.VR == "SQ" and elem.value:
            sps = ITEM[SPS_SEQUENCE].children or {}
            found += [
                int(e.tag) for e in elem.value[0] if not e.tag.is_private and int(e.tag) not in sps
            ]
    return found


def device_certificates() -> dict[str, str]:
    """{AE title: normalised certificate subject} of the active Devices authenticated by a TLS
    client certificate (``Device.certificate_subject``)."""
    from worklist.peers import normalise_subject

    rows = Device.objects.filter(active=True).exclude(certificate_subject="")
    return {ae: normalise_subject(subject)
            for ae, subject in rows.values_list("ae_title", "certificate_subject")}


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


#: Patients a name search considers at most (a one-letter search in a large department): the
#: pages show the first 50 in name order of these.
SEARCH_CAP = 1000


def patients_matching(text: str) -> QuerySet[Patient]:
    """Patients (not merged away) whose patient ID is ``text`` or one of whose name keys starts
    with it: Hanzi (``王小东``, ``小东``), Pinyin with or without spaces, separators, capitals or
    tones (``wang xiaodong``, ``wangxiaodong``, ``WANG^XIAODONG``), initials (``wxd``), the given
    name first (``xiaodong wang``). One indexed prefix look-up on PatientNameKey.key
    (worklist.pn.search_keys), on SQLite and PostgreSQL alike.
    """
    text = text.strip()
    match = Q(patient_id=text)
    key = pn.query_key(text)
    if key:
        if connection.vendor == "postgresql":
            # LIKE 'key%' through the varchar_pattern_ops index, right under any collation.
            prefix = Q(key__startswith=key)
        else:
            # SQLite's LIKE ignores case and then no index; a range on the binary-ordered index
            # is the same prefix match (the keys are lower-case ASCII or ideographs).
            prefix = Q(key__gte=key, key__lt=key[:-1] + chr(ord(key[-1]) + 1))
        # Two steps, so that the planner starts from the key index and not from the (far less
        # selective) merged_into index: the matching patients first, at most SEARCH_CAP of them.
        ids = list(
            PatientNameKey.objects.filter(prefix)
            .values_list("patient_id", flat=True)
            .distinct()[:SEARCH_CAP]
        )
        match |= Q(pk__in=ids)
    # COALESCE, not IS NULL: with an indexable "merged_into_id IS NULL" SQLite walks that index
    # (nearly every patient) instead of the primary key and patient ID look-ups.
    return (
        Patient.objects.alias(merged=Coalesce("merged_into_id", Value(0)))
        .filter(match)
        .filter(merged=0)
    )


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
    # As it would be stored: a Hanzi-only name compares with its derived Pinyin as well.
    stored = pn.resolve(name).name
    wanted = {
        "^".join(part.strip().casefold() for part in group.split("^"))
        for group in stored.groups
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


def workitem_rows(
    identifier: Dataset,
    *,
    pks: list[int] | None = None,
    station_ae: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """The worklist rows of the steps a UPS search names (``worklist.ups.mwl_identifier``):
    the one MWL matching engine, narrowed to the workitem UIDs asked for, if any."""
    query = worklist_query(identifier, station_ae=station_ae)
    if pks is not None:
        query = WorklistQuery(query.queryset.filter(pk__in=pks), query.predicates)
    return list(worklist_rows(query, limit=limit))


def workitem_row(pk: int) -> dict | None:
    """The worklist row of one step offered as a workitem (None: no such step, or unscheduled,
    which is no workitem)."""
    identifier = Dataset()
    item = Dataset()
    item.ScheduledProcedureStepStatus = sorted(UPS_STATE_OF_STEP)
    identifier.ScheduledProcedureStepSequence = [item]
    rows = workitem_rows(identifier, pks=[pk], limit=1)
    return rows[0] if rows else None


def step_by_pk(pk: int) -> ScheduledProcedureStep | None:
    return ScheduledProcedureStep.objects.filter(pk=pk).first()
