from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RisConfig(AppConfig):
    name = "ris"
    verbose_name = "ris service"

    def ready(self) -> None:
        from ris.roles import ensure_groups

        post_migrate.connect(ensure_groups, sender=self)

        from ris.hl7.notifications import (
            on_order_created,
            on_order_status_changed,
            on_step_rescheduled,
        )
        from worklist.signals import order_created, order_status_changed, step_rescheduled

        # Queue the HIS status message in the transaction of the change (ris.hl7.notifications).
        order_status_changed.connect(on_order_status_changed, dispatch_uid="ris.hl7.order_status")
        step_rescheduled.connect(on_step_rescheduled, dispatch_uid="ris.hl7.step_rescheduled")
        # IHE SWF.b receivers get OMI^O23 NW for every new order (RAD-4); the short-lived cache
        # of which destinations those are forgets a destination edited in this process.
        order_created.connect(on_order_created, dispatch_uid="ris.hl7.order_created")
        from django.db.models.signals import post_delete, post_save

        from ris.hl7.notifications import forget_swf_b
        from ris.models import HL7Destination

        post_save.connect(forget_swf_b, sender=HL7Destination, dispatch_uid="ris.hl7.swf-b")
        post_delete.connect(forget_swf_b, sender=HL7Destination, dispatch_uid="ris.hl7.swf-b")
