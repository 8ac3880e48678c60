from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("ris", "0008_user_preference"),
    ]

    operations = [
        migrations.AddField(
            model_name="userpreference",
            name="board_modality",
            field=models.CharField(blank=True, max_length=16, verbose_name="board modality"),
        ),
    ]
