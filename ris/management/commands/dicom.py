from django.conf import settings
from django.core.management.base import BaseCommand

from ris import dicom_server
from ris.listeners import StopFlag, add_listener_arguments, exit_now, override_settings_from_options


class Command(BaseCommand):
    help = "Run the DICOM listener (Verification, Modality Worklist, MPPS) alone."

    def add_arguments(self, parser):
        add_listener_arguments(parser)

    def handle(self, *args, **options):
        override_settings_from_options(options)
        stop = StopFlag()
        server = dicom_server.start(settings.RIS_DICOM_HOST, int(settings.RIS_DICOM_PORT))
        host, port = server.server_address[:2]
        self.stdout.write(f"dicom     {settings.RIS_AE_TITLE}@{host}:{port}", ending="\n")
        self.stdout.flush()
        stop.wait()
        dicom_server.stop(server, grace_seconds=5.0)
        exit_now()
