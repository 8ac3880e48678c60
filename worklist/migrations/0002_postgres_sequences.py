"""PostgreSQL sequences behind the identifier counters (worklist.identifiers).

Sequences are not transactional, so concurrent HL7 workers never queue on a counter row; other
databases use the Counter table and this migration does nothing there.
"""

from django.db import migrations

COUNTERS = ("accession", "requested_procedure", "sps", "study_uid")


def create_sequences(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in COUNTERS:
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS ris_counter_{name}")


def drop_sequences(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in COUNTERS:
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS ris_counter_{name}")


class Migration(migrations.Migration):
    dependencies = [("worklist", "0001_initial")]
    operations = [migrations.RunPython(create_sequences, drop_sequences)]
