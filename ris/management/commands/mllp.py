import asyncio
import signal
import ssl

from django.conf import settings
from django.core.management.base import BaseCommand

from ris.hl7 import handler
from ris.hl7.mllp import MLLPServer
from ris.listeners import add_listener_arguments, exit_now, override_settings_from_options


def tls_context() -> ssl.SSLContext | None:
    """MLLP over TLS with the profile of the DICOM TLS port (BCP 195, as an IHE ATNA secure
    node uses for every connection): TLS 1.2 or newer, AEAD ciphers with forward secrecy;
    with ``RIS_MLLP_TLS_CA`` a client certificate signed by it is required and names the
    sender (HL7Sender)."""
    if not settings.RIS_MLLP_TLS_CERT:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20")
    context.load_cert_chain(settings.RIS_MLLP_TLS_CERT, settings.RIS_MLLP_TLS_KEY or None)
    if settings.RIS_MLLP_TLS_CA:
        context.load_verify_locations(settings.RIS_MLLP_TLS_CA)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


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
        context = tls_context()
        host, port = settings.RIS_MLLP_HOST, int(settings.RIS_MLLP_PORT)
        await server.start(host, port, ssl=context,
                           reuse_port=settings.RIS_MLLP_PROCESSES > 1)
        self.stdout.write(f"mllp      {'mllps' if context else 'mllp'}://{host}:{port}")
        self.stdout.flush()
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()
        await server.stop(grace_seconds=5.0)
