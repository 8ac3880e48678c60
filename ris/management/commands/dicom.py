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
        ae, handlers = dicom_server.build_ae()
        server = dicom_server.start(settings.RIS_DICOM_HOST, int(settings.RIS_DICOM_PORT),
                                    ae=ae, handlers=handlers)
        host, port = server.server_address[:2]
        self.stdout.write(f"dicom     {settings.RIS_AE_TITLE}@{host}:{port}", ending="\n")
        servers = [server]
        context = dicom_server.tls_context()
        if context is not None and settings.RIS_DICOM_TLS_PORT:
            # DICOM's convention: TLS on a port of its own (2762), beside the plain one.
            tls = dicom_server.start(settings.RIS_DICOM_HOST, int(settings.RIS_DICOM_TLS_PORT),
                                     ssl_context=context, ae=ae, handlers=handlers)
            host, port = tls.server_address[:2]
            self.stdout.write(f"dicom TLS {settings.RIS_AE_TITLE}@{host}:{port}", ending="\n")
            servers.append(tls)
        self.stdout.flush()
        stop.wait()
        for each in servers:
            dicom_server.stop(each, grace_seconds=5.0)
        exit_now()
