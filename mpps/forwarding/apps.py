from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ForwardingConfig(AppConfig):
    name = "mpps.forwarding"
    label = "forwarding"
    verbose_name = _("Forwarding to the PACS")

    def ready(self) -> None:
        from mpps import signals
        from mpps.forwarding import services
        from worklist import signals as worklist_signals

        # Queue the relay in the transaction that stored the PPS (nothing lost, nothing invented).
        signals.pps_received.connect(services.on_pps_received, dispatch_uid="forwarding.mpps")
        # A40 / A47: what the spool still holds follows the patient's new identity.
        worklist_signals.patient_identity_changed.connect(
            services.on_patient_identity_changed, dispatch_uid="forwarding.patient_identity"
        )
