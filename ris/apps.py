from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save
from django.utils.translation import gettext_lazy as _


class RisConfig(AppConfig):
    name = "ris"
    verbose_name = _("ris service")

    def ready(self) -> None:
        from ris.roles import ensure_groups

        post_migrate.connect(ensure_groups, sender=self)

        from ris.hl7.notifications import on_order_status_changed, on_step_rescheduled
        from worklist.signals import order_status_changed, step_rescheduled

        # Queue the HIS status message in the transaction of the change (ris.hl7.notifications).
        order_status_changed.connect(on_order_status_changed, dispatch_uid="ris.hl7.order_status")
        step_rescheduled.connect(on_step_rescheduled, dispatch_uid="ris.hl7.step_rescheduled")

        from ris.hl7.mapping import forget_catalogue
        from worklist.models import Device, ProcedureOrderCode, ProcedureType

        # The HL7 listener's short-lived OBR-4 cache forgets a catalogue edited in this process.
        for model in (ProcedureType, ProcedureOrderCode, Device):
            uid = f"ris.hl7.catalogue-{model.__name__}"
            post_save.connect(forget_catalogue, sender=model, dispatch_uid=uid)
            post_delete.connect(forget_catalogue, sender=model, dispatch_uid=uid)
        m2m_changed.connect(
            forget_catalogue,
            sender=ProcedureType.stations.through,
            dispatch_uid="ris.hl7.catalogue-stations",
        )
