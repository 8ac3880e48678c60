from django.apps import AppConfig


class ForwardingConfig(AppConfig):
    name = "mpps.forwarding"
    label = "forwarding"
    verbose_name = "Forwarding to the PACS"

    def ready(self) -> None:
        from mpps import signals
        from mpps.forwarding import services

        # Queue the relay in the transaction that stored the PPS (nothing lost, nothing invented).
        signals.pps_received.connect(services.on_pps_received, dispatch_uid="forwarding.mpps")
