"""Accession numbers, requested procedure IDs, SPS IDs and Study Instance UIDs.

All come from named counters that are unique under concurrent writers: on PostgreSQL from
sequences (non-transactional, so two HL7 workers never wait on each other), elsewhere from a
``Counter`` row bumped with a single UPDATE inside the caller's write transaction (SQLite takes its
write lock at BEGIN IMMEDIATE, so writers are serialised anyway).
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from worklist.models import Counter

COUNTERS = ("accession", "requested_procedure", "sps", "study_uid", "patient_id")
_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def sequence_name(counter: str) -> str:
    return f"ris_counter_{counter}"


def next_value(counter: str) -> int:
    if counter not in COUNTERS:
        raise ValueError(f"unknown counter {counter!r}")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(%s)", [sequence_name(counter)])
            return int(cursor.fetchone()[0])
    if connection.in_atomic_block and sqlite3.sqlite_version_info >= (3, 35):
        # One statement instead of savepoint + UPDATE + SELECT + release: an HL7 NW draws three
        # counters, and on SQLite each statement of the hot path counts (docs/BENCHMARKS.md).
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Counter._meta.db_table} SET value = value + 1 WHERE name = %s "
                "RETURNING value",
                [counter],
            )
            row = cursor.fetchone()
        if row is not None:
            return int(row[0])
    with transaction.atomic():
        if not Counter.objects.filter(name=counter).update(value=F("value") + 1):
            try:
                with transaction.atomic():
                    Counter.objects.create(name=counter, value=1)
                    return 1
            except IntegrityError:
                Counter.objects.filter(name=counter).update(value=F("value") + 1)
        return Counter.objects.values_list("value", flat=True).get(name=counter)


def next_values(counts: dict[str, int]) -> dict[str, list[int]]:
    """``count`` new values of each named counter, in ascending order, in one statement if possible.

    A new order needs an accession number and, per procedure, a requested procedure ID and an
    SPS ID: drawing them together is one database round trip instead of one per identifier
    (the HL7 inbound path counts its statements, docs/BENCHMARKS.md).
    """
    wanted = {name: count for name, count in counts.items() if count > 0}
    for name in wanted:
        if name not in COUNTERS:
            raise ValueError(f"unknown counter {name!r}")
    drawn: dict[str, list[int]] = {name: [] for name in counts}
    if not wanted:
        return drawn
    if connection.vendor == "postgresql":
        # nextval() is non-transactional and unique across sessions; the row order of the
        # result is not the call order, hence the sort.
        query = " UNION ALL ".join(
            "SELECT %s, nextval(%s) FROM generate_series(1, %s)" for _ in wanted
        )
        params = [p for name, n in wanted.items() for p in (name, sequence_name(name), n)]
        with connection.cursor() as cursor:
            cursor.execute(query, params)
            for name, value in cursor.fetchall():
                drawn[name].append(int(value))
    elif connection.in_atomic_block and sqlite3.sqlite_version_info >= (3, 35):
        # Inside the caller's write transaction (SQLite serialises writers from BEGIN
        # IMMEDIATE), so the counter rows are this transaction's until it ends.
        cases = " ".join("WHEN %s THEN %s" for _ in wanted)
        marks = ", ".join("%s" for _ in wanted)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Counter._meta.db_table} SET value = value + CASE name {cases} END "
                f"WHERE name IN ({marks}) RETURNING name, value",
                [p for item in wanted.items() for p in item] + list(wanted),
            )
            for name, last in cursor.fetchall():
                drawn[name] = list(range(int(last) - wanted[name] + 1, int(last) + 1))
    for name, count in wanted.items():
        while len(drawn[name]) < count:  # counters not created yet, or an older SQLite
            drawn[name].append(next_value(name))
        drawn[name].sort()
    return drawn


def accession_number(value: int) -> str:
    """Accession Number (0008,0050): prefix and a zero-padded counter, at most 16 characters."""
    accession = f"{settings.RIS_ACCESSION_PREFIX}{value:09d}"
    if len(accession) > 16:
        raise ValueError(f"accession number {accession!r} is longer than 16 characters (SH)")
    return accession


def requested_procedure_id(value: int) -> str:
    return f"RP{value:08d}"


def sps_id(value: int) -> str:
    return f"SPS{value:08d}"


def study_instance_uid(value: int | None = None) -> str:
    """A Study Instance UID under ``RIS_UID_ROOT`` (from a ``study_uid`` counter value), or a
    UUID-derived one (PS3.5 B.2) without a root."""
    root = settings.RIS_UID_ROOT
    if not root:
        return f"2.25.{uuid.uuid4().int}"
    if not _UID_ROOT.match(root):
        raise ValueError(f"RIS_UID_ROOT {root!r} is not a valid UID root")
    uid = f"{root}.1.{value if value is not None else next_value('study_uid')}"
    if len(uid) > 64:
        raise ValueError(f"UID {uid!r} is longer than 64 characters: use a shorter RIS_UID_ROOT")
    return uid


@dataclass(frozen=True)
class OrderIdentifiers:
    """What ris assigns to a new order: one accession number, and per requested procedure its
    ID, its step's SPS ID and its Study Instance UID (in procedure order)."""

    accession_number: str
    requested_procedure_ids: list[str]
    sps_ids: list[str]
    study_instance_uids: list[str]


def for_order(procedures: int) -> OrderIdentifiers:
    """The identifiers of a new order with ``procedures`` requested procedures (one step each)."""
    counts = {"accession": 1, "requested_procedure": procedures, "sps": procedures}
    if settings.RIS_UID_ROOT:
        counts["study_uid"] = procedures
    values = next_values(counts)
    uids = values.get("study_uid") or [None] * procedures
    return OrderIdentifiers(
        accession_number=accession_number(values["accession"][0]),
        requested_procedure_ids=[requested_procedure_id(v) for v in values["requested_procedure"]],
        sps_ids=[sps_id(v) for v in values["sps"]],
        study_instance_uids=[study_instance_uid(v) for v in uids],
    )


def patient_id(value: int, pattern: str | None = None) -> str:
    """Patient ID (0010,0020) from the site's pattern, e.g. ``P{counter:08d}`` -> ``P00000042``.

    The pattern is a ``str.format`` template with one ``counter`` field, so a site keeps the
    numbering its other systems already know (a prefix, a width). LO allows 64 characters.
    """
    pattern = pattern or settings.RIS_PATIENT_ID_PATTERN
    try:
        value_text = pattern.format(counter=value)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"RIS_PATIENT_ID_PATTERN {pattern!r} must contain one {{counter}} field"
        ) from exc
    if value_text == pattern or len(value_text) > 64:
        raise ValueError(f"RIS_PATIENT_ID_PATTERN {pattern!r} gives no usable patient ID")
    return value_text


def new_patient_id() -> str:
    return patient_id(next_value("patient_id"))


def new_accession_number() -> str:
    return accession_number(next_value("accession"))


def new_requested_procedure_id() -> str:
    return requested_procedure_id(next_value("requested_procedure"))


def new_sps_id() -> str:
    return sps_id(next_value("sps"))


def new_study_instance_uid() -> str:
    return study_instance_uid()
