"""``ris backup FILE``: an online, consistent copy of the SQLite database while ris runs.

SQLite's online backup API (``sqlite3.Connection.backup``) copies the database as one read
transaction: with WAL, writers go on meanwhile and the copy is the state at its start, committed
transactions only, WAL content included. Copying the file with ``cp`` instead can catch it between
a write to the WAL and the checkpoint, and miss the ``-wal`` file. The copy is checked with
``PRAGMA integrity_check`` and renamed into place only when whole. On PostgreSQL use its own tools
(``pg_dump``, ``pg_basebackup``; docs/operations.md).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection


class Command(BaseCommand):
    help = "Online backup of the SQLite database to FILE (consistent while ris runs)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="where the copy goes (a new SQLite database file)")

    def handle(self, *args, **options):
        if connection.vendor != "sqlite":
            raise CommandError("ris backup copies SQLite; on PostgreSQL use pg_dump or "
                               "pg_basebackup (docs/operations.md)")
        source_path = Path(connection.settings_dict["NAME"])
        target = Path(options["file"]).resolve()
        if target == source_path.resolve():
            raise CommandError("the backup must not overwrite the database itself")
        partial = target.with_name(f".{target.name}.partial")
        partial.unlink(missing_ok=True)
        started = time.monotonic()
        source = sqlite3.connect(source_path, timeout=60)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy)  # all pages in one step: one consistent snapshot
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise CommandError(f"the copy failed its integrity check: {verdict}")
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
            source.close()
        os.replace(partial, target)
        size = target.stat().st_size
        self.stdout.write(f"backup of {source_path} written to {target}: {size} bytes in "
                          f"{time.monotonic() - started:.1f} s, integrity ok")
