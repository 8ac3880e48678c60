from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WorklistConfig(AppConfig):
    name = "worklist"
    verbose_name = _("Worklist: patients, orders and scheduled steps")

    def ready(self) -> None:
        # pydicom leaves ISO 2022 IR 58's escape in decoded text (see worklist.charsets).
        from django.db.models.signals import post_delete, post_save

        from worklist import charsets, receivers, routing
        from worklist.models import Device, ModalityDefaultStation, Patient, StationRule

        charsets.install()
        post_save.connect(
            receivers.keep_name_keys, sender=Patient, dispatch_uid="worklist.name_keys"
        )
        # The station routing rules' cache forgets a rule or station edited in this process.
        for model in (StationRule, ModalityDefaultStation, Device):
            uid = f"worklist.routing-{model.__name__}"
            post_save.connect(routing.forget, sender=model, dispatch_uid=uid)
            post_delete.connect(routing.forget, sender=model, dispatch_uid=uid)

        from worklist.models import OpeningPeriod, ScheduleException
        from worklist.scheduling import on_schedule_changed

        # Device.has_schedule follows the station's template and exceptions.
        for model in (OpeningPeriod, ScheduleException):
            for signal in (post_save, post_delete):
                signal.connect(
                    on_schedule_changed,
                    sender=model,
                    dispatch_uid=f"worklist.has_schedule.{model.__name__}.{signal is post_save}",
                )
