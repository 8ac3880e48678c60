from django.apps import AppConfig


class MppsConfig(AppConfig):
    name = "mpps"
    verbose_name = "Performed procedure steps (MPPS) and PACS forwarding"
