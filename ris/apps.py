from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save
from django.utils.translation import gettext_lazy as _


class RisConfig(AppConfig):
    name = "ris"
    verbose_name = _("ris service")

    def ready(self) -> None:
        from ris.roles import ensure_groups

        post_migrate.connect(ensure_groups, sender=self)
        post_migrate.connect(_create_cache_table, sender=self)

        from ris import security

        security.connect()  # audit of logins, failures, logouts and lockouts

        from django.contrib.auth.signals import user_logged_in

        from ris.accounts import copy_language_into_session

        # A new session speaks the language stored on the account (ris.accounts).
        user_logged_in.connect(copy_language_into_session, dispatch_uid="ris.user-language")

        from ris.atna import on_audit_recorded
        from worklist.signals import audit_recorded

        # IHE ATNA: every audited row ATNA has an event for is queued for the audit repository.
        audit_recorded.connect(on_audit_recorded, dispatch_uid="ris.atna")

        from ris.hl7.notifications import (
            on_order_created,
            on_order_status_changed,
            on_order_updated,
            on_patient_identity_changed,
            on_patient_updated,
            on_patients_linked,
            on_step_rescheduled,
        )
        from worklist.signals import (
            order_created,
            order_status_changed,
            order_updated,
            patient_identity_changed,
            patient_updated,
            patients_linked,
            step_rescheduled,
        )

        # Queue the HIS status message in the transaction of the change (ris.hl7.notifications).
        order_status_changed.connect(on_order_status_changed, dispatch_uid="ris.hl7.order_status")
        step_rescheduled.connect(on_step_rescheduled, dispatch_uid="ris.hl7.step_rescheduled")
        # IHE SWF.b receivers get OMI^O23 NW for every new order (RAD-4); the short-lived cache
        # of which destinations those are forgets a destination edited in this process.
        order_created.connect(on_order_created, dispatch_uid="ris.hl7.order_created")
        # ... and OMI^O23 XO when the request, an exam or a step's details change (RAD-13).
        order_updated.connect(on_order_updated, dispatch_uid="ris.hl7.order_updated")
        # Archives that keep patients get every patient change as ADT (A08, A40, A47, A24, A37).
        patient_updated.connect(on_patient_updated, dispatch_uid="ris.hl7.patient_updated")
        patient_identity_changed.connect(
            on_patient_identity_changed, dispatch_uid="ris.hl7.patient_identity"
        )
        patients_linked.connect(on_patients_linked, dispatch_uid="ris.hl7.patients_linked")

        from ris.hl7.notifications import forget_swf_b
        from ris.models import HL7Destination

        post_save.connect(forget_swf_b, sender=HL7Destination, dispatch_uid="ris.hl7.swf-b")
        post_delete.connect(forget_swf_b, sender=HL7Destination, dispatch_uid="ris.hl7.swf-b")

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


def _create_cache_table(sender, using: str = "default", **kwargs) -> None:
    """The database cache of the limits shared across processes (settings.CACHES["shared"]):
    created by every ``migrate``, so no deployment step can forget it."""
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)
