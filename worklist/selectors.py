"""Reads of the worklist domain for the interfaces (DICOM, API, web): no writes here."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from pydicom import Dataset

from worklist.dicom import ITEM, ROW_FIELDS, SPS_SEQUENCE, ResponseBuilder
from worklist.matching import WorklistQuery, worklist_query
from worklist.models import Device, ScheduledProcedureStep
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
