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

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from worklist.models import Counter

COUNTERS = ("accession", "requested_procedure", "sps", "study_uid")
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


def new_accession_number() -> str:
    """Accession Number (0008,0050): prefix and a zero-padded counter, at most 16 characters."""
    prefix = settings.RIS_ACCESSION_PREFIX
    value = f"{prefix}{next_value('accession'):09d}"
    if len(value) > 16:
        raise ValueError(f"accession number {value!r} is longer than 16 characters (SH)")
    return value


def new_requested_procedure_id() -> str:
    return f"RP{next_value('requested_procedure'):08d}"


def new_sps_id() -> str:
    return f"SPS{next_value('sps'):08d}"


def new_study_instance_uid() -> str:
    """A Study Instance UID under ``RIS_UID_ROOT``, or a UUID-derived one (PS3.5 B.2) without it."""
    root = settings.RIS_UID_ROOT
    if not root:
        return f"2.25.{uuid.uuid4().int}"
    if not _UID_ROOT.match(root):
        raise ValueError(f"RIS_UID_ROOT {root!r} is not a valid UID root")
    uid = f"{root}.1.{next_value('study_uid')}"
    if len(uid) > 64:
        raise ValueError(f"UID {uid!r} is longer than 64 characters: use a shorter RIS_UID_ROOT")
    return uid
