from django.apps import AppConfig


class WorklistConfig(AppConfig):
    name = "worklist"
    verbose_name = "Worklist: patients, orders and scheduled steps"

    def ready(self) -> None:
        # pydicom leaves ISO 2022 IR 58's escape in decoded text (see worklist.charsets).
        from worklist import charsets

        charsets.install()
