"""Reads of the worklist domain for the interfaces (DICOM, API, web): no writes here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.db.models.sql.constants import MULTI
from pydicom import Dataset

from worklist import pn
from worklist.dicom import ITEM, ROW_FIELDS, SPS_SEQUENCE, ResponseBuilder
from worklist.matching import WorklistQuery, worklist_query
from worklist.models import (
    AuditEvent,
    Device,
    Patient,
    PatientNameKey,
    ScheduledProcedureStep,
    UpsSubscription,
)
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


class RawWorklistRows:
    """The rows of a worklist query as the database driver returned them, before Django's
    converters (SQLite's datetimes and JSON still text), with ``row()`` for the converted dict.

    The raw tuple is a hashable image of everything a row shows: the MWL response cache
    (worklist/mwl/response_cache.py) keys an encoded response on it, so a hit costs neither the
    converters nor the encoding, and any change of any column is a miss.
    """

    def __init__(self, raw: list[tuple], compiler, names: tuple[str, ...] = _NAMES) -> None:
        self.raw = raw
        self.names = names
        self._compiler = compiler
        fields = [s[0] for s in compiler.select[: compiler.col_count]] if raw else []
        self._converters = compiler.get_converters(fields) if raw else {}
        self._unread = dict.fromkeys(n for n in _NAMES if n not in names)

    def __len__(self) -> int:
        return len(self.raw)

    def row(self, raw: tuple) -> dict:
        """The row dict of one raw tuple (the same as ``worklist_rows`` yields; a column the
        query did not read is None)."""
        if self._converters:
            (values,) = self._compiler.apply_converters([raw], self._converters)
        else:
            values = raw
        row = dict(zip(self.names, values, strict=True))
        if self._unread:
            row.update(self._unread)
        return row


def worklist_raw_rows(
    query: WorklistQuery, *, limit: int | None = None, columns: tuple[str, ...] | None = None
) -> RawWorklistRows:
    """``worklist_rows`` unconverted: one SELECT on a cursor, the rows as the driver gives them.

    ``columns`` (ROW_FIELDS names, ``pk`` first: ``ResponseBuilder.columns``) reads only those,
    which is most of a broad query's database time with 52 columns through five joins; a query
    with a Python refinement reads them all, converts each row once to test it and keeps only
    those it accepts, at most ``limit``. Without one the limit is the SQL LIMIT.
    """
    qs = query.queryset.all()  # a clone: never the rows another caller already read
    names = _NAMES
    if columns is not None and not query.predicates:
        names = columns
        qs = qs.values_list(*(ROW_FIELDS[name] for name in columns))
    if limit is not None and not query.predicates:
        qs = qs[:limit]
    compiler = qs.query.get_compiler(using=qs.db)
    if compiler.connection.vendor == "postgresql" and settings.RIS_MWL_PREPARED_STATEMENTS:
        raw = _prepared_fetch(compiler)
    else:
        chunks = compiler.execute_sql(MULTI)
        raw = [tuple(values) for chunk in chunks for values in chunk] if chunks else []
    rows = RawWorklistRows(raw, compiler, names)
    if query.predicates:
        kept = [values for values in raw if query.accepts(rows.row(values))]
        rows.raw = kept[:limit] if limit is not None else kept
    return rows


def _prepared_fetch(compiler) -> list[tuple]:
    """The compiled query as a prepared statement on PostgreSQL (psycopg's server-side binding,
    ``prepare=True``): the server plans each shape of worklist query once per connection, not
    on every C-FIND. Django binds on the client and never prepares (for connection poolers in
    transaction mode, which ris does not sit behind: RIS_MWL_PREPARED_STATEMENTS off if it
    does)."""
    import psycopg

    try:
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return []
    connection = compiler.connection
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall()


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


_UPS_EVENT_SOURCES = Q(
    object_type="worklist.ScheduledProcedureStep", action__startswith="step."
) | Q(object_type="worklist.UpsSubscription", action="ups.subscribe")


def ups_event_sources(
    *, after_pk: int | None = None, pks: list[int] | None = None, limit: int = 1000
) -> list[AuditEvent]:
    """The audit rows that may make UPS event reports (``dicomweb.events``), oldest first:
    those after ``after_pk`` or those of ``pks``. They are a step's status change (a State
    Report when its UPS state changes), a performer's progress, a cancellation request for a
    claimed step, and a new subscription (its initial State Report)."""
    rows = AuditEvent.objects.filter(_UPS_EVENT_SOURCES)
    if after_pk is not None:
        rows = rows.filter(pk__gt=after_pk)
    if pks is not None:
        rows = rows.filter(pk__in=pks)
    return list(rows.order_by("pk")[:limit])


def ups_event_source_pks(*, since: dt.datetime, up_to_pk: int) -> list[int]:
    """The keys of such rows written since ``since`` up to ``up_to_pk``: a transaction that
    committed after a later one (PostgreSQL draws keys before commit) is found among them."""
    return list(
        AuditEvent.objects.filter(_UPS_EVENT_SOURCES, at__gte=since, pk__lte=up_to_pk)
        .values_list("pk", flat=True)
    )


def last_audit_pk() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def ups_subscriptions_of(step: ScheduledProcedureStep) -> list[UpsSubscription]:
    """Whom a workitem's events go to (PS3.4 CC.2.3): the AEs subscribed to it, and the global
    subscribers that include it (not suspended before it was created, not unsubscribed from
    it). A filtered global subscription's keys are the caller's to match."""
    rows = list(UpsSubscription.objects.filter(Q(step=step) | Q(step__isnull=True)))
    excluded = {r.ae_title for r in rows if r.step_id is not None and not r.subscribed}
    chosen: dict[str, UpsSubscription] = {}
    for row in rows:
        if row.ae_title in excluded:
            continue
        if row.step_id is None and row.suspended_at is not None and (
            step.created_at >= row.suspended_at
        ):
            continue
        if row.step_id is not None or row.ae_title not in chosen:
            chosen[row.ae_title] = row
    return list(chosen.values())


def ups_subscription(pk: int) -> UpsSubscription | None:
    return UpsSubscription.objects.filter(pk=pk).select_related("step").first()


def ups_workitem_subscriptions(ae_title: str) -> list[UpsSubscription]:
    """An AE's subscriptions to single workitems (the event channel's catch-up on opening)."""
    return list(
        UpsSubscription.objects.filter(ae_title=ae_title, step__isnull=False, subscribed=True)
        .select_related("step").order_by("pk")
    )
