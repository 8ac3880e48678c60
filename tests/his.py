"""A test HIS: the python ``hl7`` package's asyncio MLLP server (an independent MLLP
implementation), recording every message and answering with ``Message.create_ack``."""

from __future__ import annotations

import asyncio
import threading

import hl7
import hl7.mllp


class HISReceiver:
    """An HIS order-status receiver on the hl7 package's MLLP server, answering ``ack_code``."""

    def __init__(self, port: int, *, encoding: str = "utf-8", ack_code: str = "AA") -> None:
        self.port = port
        self.encoding = encoding
        self.ack_code = ack_code
        self.received: list[hl7.Message] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    async def _client(self, reader, writer) -> None:
        try:
            while not reader.at_eof():
                message = await reader.readmessage()
                self.received.append(message)
                writer.writemessage(message.create_ack(self.ack_code))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _start(self) -> None:
        self.server = await hl7.mllp.start_hl7_server(
            self._client, "127.0.0.1", self.port, encoding=self.encoding
        )

    def __enter__(self) -> HISReceiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
