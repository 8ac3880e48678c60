"""``ris events``: the UPS-RS event channel (WebSocket) alone; ``ris serve`` runs it too."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from dicomweb import events
from ris.listeners import exit_now, split_host_port


class Command(BaseCommand):
    help = "Run the UPS-RS event channel (WebSocket) alone."

    def handle(self, *args, **options):
        asyncio.run(self._serve())
        exit_now()

    async def _serve(self) -> None:
        host, port = split_host_port(settings.RIS_UPS_EVENTS_HTTP)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)

        def ready() -> None:
            self.stdout.write(f"events    ws://{host}:{port}/subscribers/<AE>")
            self.stdout.flush()

        await events.run(host, port, poll_seconds=settings.RIS_UPS_EVENTS_POLL_MS / 1000,
                         stopped=stopped, ready=ready)
