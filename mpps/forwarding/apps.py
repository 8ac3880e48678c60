from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ForwardingConfig(AppConfig):
    name = "mpps.forwarding"
    label = "forwarding"
    verbose_name = _("Forwarding to the PACS")

    def ready(self) -> None:
        from mpps import signals
        from mpps.forwarding import services

        # Queue the relay in the transaction that stored the PPS (nothing lost, nothing invented).
        signals.pps_received.connect(services.on_pps_received, dispatch_uid="forwarding.mpps")
