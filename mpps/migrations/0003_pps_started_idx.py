from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("mpps", "0002_verbose_names"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="performedprocedurestep",
            index=models.Index(fields=["started_at"], name="pps_started_idx"),
        ),
    ]
