from django.apps import AppConfig


class WorklistConfig(AppConfig):
    name = "worklist"
    verbose_name = "Worklist: patients, orders and scheduled steps"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

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
