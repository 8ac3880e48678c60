from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MppsConfig(AppConfig):
    name = "mpps"
    verbose_name = _("Performed procedure steps (MPPS) and PACS forwarding")
