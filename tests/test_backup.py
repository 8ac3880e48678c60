"""The SQLite backup and its restore drill: ``ris backup`` while rows are being written, then a
ris started on the restored file finds the data and has no migration pending. SQLite only (on
PostgreSQL the backup is PostgreSQL's own tools)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest
from django.core.management import call_command
from django.db import connection

from worklist import services
from worklist.audit import Actor
from worklist.models import Patient

pytestmark = pytest.mark.django_db(transaction=True)

ACTOR = Actor.system("tests.backup")


def _ris(data_dir, database, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RIS_DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{database}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "-m", "ris.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_backup_taken_during_writes_restores_into_a_working_ris(tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the online backup API is SQLite's")
    for n in range(20):
        services.patient_upsert(patient_id=f"BK-{n}", issuer="HOSP", name=f"Backup^{n}",
                                actor=ACTOR)
    writing = threading.Event()
    done = threading.Event()

    def keep_writing() -> None:
        from django.db import connection as thread_connection

        n = 100
        while not done.is_set():
            services.patient_upsert(patient_id=f"BK-{n}", issuer="HOSP", name="Writer^W",
                                    actor=ACTOR)
            writing.set()
            n += 1
        thread_connection.close()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    writing.wait(30)
    backup = tmp_path / "backup.sqlite3"
    try:
        call_command("backup", str(backup))
    finally:
        done.set()
        writer.join(30)

    with sqlite3.connect(backup) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        copied = copy.execute("SELECT count(*) FROM worklist_patient").fetchone()[0]
    assert 20 < copied <= Patient.objects.count()

    # The drill: a fresh data directory whose database is the copy.
    restored = tmp_path / "restored"
    restored.mkdir()
    database = restored / "ris.sqlite3"
    database.write_bytes(backup.read_bytes())
    check = _ris(restored, database, "migrate", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    dump = _ris(restored, database, "dumpdata", "worklist.patient")
    assert dump.returncode == 0, dump.stderr
    ids = {row["fields"]["patient_id"] for row in json.loads(dump.stdout)}
    assert {f"BK-{n}" for n in range(20)} <= ids
    assert len(ids) == copied


def test_backup_refuses_to_overwrite_the_database_itself():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("backup", connection.settings_dict["NAME"])
