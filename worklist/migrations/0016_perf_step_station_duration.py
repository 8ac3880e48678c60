from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("worklist", "0015_step_ups_transaction_uid"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="scheduledprocedurestep",
            index=models.Index(
                fields=["station", "expected_duration_minutes"], name="sps_station_duration_idx"
            ),
        ),
    ]
