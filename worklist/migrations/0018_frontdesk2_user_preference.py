import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("worklist", "0017_step_station_duration"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="UserPreference",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                           verbose_name="ID")),
                ("board_modality", models.CharField(blank=True, max_length=16,
                                                    verbose_name="board modality")),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="ris_preference",
                                              to=settings.AUTH_USER_MODEL)),
            ],
            options={"verbose_name": "user preference", "verbose_name_plural": "user preferences"},
        ),
    ]
