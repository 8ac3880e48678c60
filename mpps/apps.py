from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MppsConfig(AppConfig):
    name = "mpps"
    verbose_name = _("Performed procedure steps (MPPS) and PACS forwarding")

    def ready(self) -> None:
        from mpps.metrics import mpps_metrics, spool_metrics
        from ris import metrics

        metrics.register(mpps_metrics)  # GET /metrics (ris.metrics)
        metrics.register(spool_metrics)
