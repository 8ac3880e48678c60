import asyncio
import signal
import ssl

from django.conf import settings
from django.core.management.base import BaseCommand

from ris.hl7 import handler
from ris.hl7.mllp import MLLPServer
from ris.listeners import add_listener_arguments, exit_now, override_settings_from_options


class Command(BaseCommand):
    help = "Run the HL7 MLLP listener alone."

    def add_arguments(self, parser):
        add_listener_arguments(parser)

    def handle(self, *args, **options):
        override_settings_from_options(options)
        asyncio.run(self._serve())
        exit_now()

    async def _serve(self) -> None:
        server = MLLPServer(
            handler.handle,
            max_message_bytes=settings.RIS_MLLP_MAX_MESSAGE_BYTES,
            idle_timeout=settings.RIS_MLLP_IDLE_TIMEOUT_SECONDS,
            too_large=handler.too_large,
            max_connections_per_address=settings.RIS_MLLP_MAX_CONNECTIONS_PER_ADDRESS,
        )
        context = None
        if settings.RIS_MLLP_TLS_CERT:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.RIS_MLLP_TLS_CERT, settings.RIS_MLLP_TLS_KEY or None)
        host, port = settings.RIS_MLLP_HOST, int(settings.RIS_MLLP_PORT)
        await server.start(host, port, ssl=context)
        self.stdout.write(f"mllp      {'mllps' if context else 'mllp'}://{host}:{port}")
        self.stdout.flush()
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
        await server.stop(grace_seconds=5.0)
