from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RisConfig(AppConfig):
    name = "ris"
    verbose_name = "ris service"

    def ready(self) -> None:
        from ris.roles import ensure_groups

        post_migrate.connect(ensure_groups, sender=self)
