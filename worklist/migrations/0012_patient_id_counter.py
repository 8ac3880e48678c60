"""The PostgreSQL sequence behind generated patient IDs (worklist.identifiers.new_patient_id).

Like the other identifier counters: a sequence on PostgreSQL, a Counter row elsewhere (created on
first use, so this migration does nothing there).
"""

from django.db import migrations


def create_sequence(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS ris_counter_patient_id")


def drop_sequence(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS ris_counter_patient_id")


class Migration(migrations.Migration):
    dependencies = [("worklist", "0011_verbose_names")]
    operations = [migrations.RunPython(create_sequence, drop_sequence)]
