from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorklistConfig(AppConfig):
    name = "worklist"
    verbose_name = _("Worklist: patients, orders and scheduled steps")

    def ready(self) -> None:
        # pydicom leaves ISO 2022 IR 58's escape in decoded text (see worklist.charsets).
        from django.db.models.signals import post_save

        from worklist import charsets, receivers
        from worklist.models import Patient

        charsets.install()
        post_save.connect(
            receivers.keep_name_keys, sender=Patient, dispatch_uid="worklist.name_keys"
        )
