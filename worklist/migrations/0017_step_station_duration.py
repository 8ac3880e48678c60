from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("worklist", "0016_ups_subscriptions"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="scheduledprocedurestep",
            index=models.Index(
                fields=["station", "expected_duration_minutes"], name="sps_station_duration_idx"
            ),
        ),
    ]
