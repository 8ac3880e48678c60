"""MLLP transport: ``<VT> message <FS><CR>`` frames over TCP, in order per connection.

A small asyncio server of ours rather than hl7apy's (which closes after one message and decodes
everything as UTF-8): bytes stay bytes here, and the handler decodes with the message's own
character set (MSH-18). The handler runs in a worker thread so a slow database commit never blocks
other connections; the ACK is written only after the handler returned, i.e. after its commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from ris.hl7.framing import CR, END, FS, VT, frame
from worklist.peers import certificate_subject

logger = logging.getLogger("ris.mllp")
__all__ = ["CR", "END", "FS", "VT", "MLLPServer", "frame"]

#: handler(message_bytes, peer, certificate_subject) -> ACK bytes (without framing; several
#: replies are joined by ``ris.hl7.ack.join_replies``, so framing them once frames each; empty:
#: nothing is sent); the subject is the peer's verified TLS client certificate's
#: (worklist.peers), "" without one
Handler = Callable[[bytes, str, str], bytes]


class MLLPServer:
    def __init__(
        self,
        handler: Handler,
        *,
        max_message_bytes: int = 1024 * 1024,
        idle_timeout: float = 300.0,
        too_large: Callable[[bytes], bytes] | None = None,
        max_connections_per_address: int = 0,
    ) -> None:
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.too_large = too_large
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        #: connections between messages (waiting for the next start block): stopped at once
        self._idle: set[asyncio.Task] = set()
        #: open connections per source address; more than ``max_connections_per_address`` are
        #: closed on accept (0: no limit), so one host cannot take every handler thread
        self.max_connections_per_address = max_connections_per_address
        self._per_address: Counter[str] = Counter()
        self._refused_addresses: set[str] = set()

    async def start(self, host: str, port: int, ssl=None, reuse_port: bool = False) -> None:
        """``reuse_port``: several listener processes on one port (RIS_MLLP_PROCESSES)."""
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, ssl=ssl, limit=self.max_message_bytes + 1024,
            reuse_port=reuse_port or None,
        )

    async def stop(self, grace_seconds: float = 8.0) -> None:
        """Stop accepting; connections finish the message they are handling, then close."""
        if self._server is not None:
            self._server.close()
        for task in list(self._idle):
            task.cancel()
        if self._connections:
            _, pending = await asyncio.wait(self._connections, timeout=grace_seconds)
            for task in pending:
                task.cancel()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        host, port = writer.get_extra_info("peername")[:2]
        peer = f"{host}:{port}"
        limit = self.max_connections_per_address
        if limit and self._per_address[host] >= limit:
            if host not in self._refused_addresses:
                self._refused_addresses.add(host)
                logger.warning("%s holds %d MLLP connections (the limit): refusing more",
                               host, limit)
            if task is not None:
                self._connections.discard(task)
            writer.close()
            return
        self._per_address[host] += 1
        self._refused_addresses.discard(host)
        subject = certificate_subject(writer.get_extra_info("peercert"))
        try:
            await self._read_messages(reader, writer, peer, subject)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # peer went away mid-frame: nothing was applied, nothing to answer
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            self._per_address[host] -= 1
            if self._per_address[host] <= 0:
                del self._per_address[host]
            writer.close()

    async def _read_messages(self, reader, writer, peer: str, subject: str = "") -> None:
        task = asyncio.current_task()
        while self._server is not None and self._server.is_serving():
            self._idle.add(task)
            try:
                # asyncio.timeout, not wait_for: no extra Task per read (two reads per message)
                async with asyncio.timeout(self.idle_timeout):
                    start = await reader.read(1)
            except TimeoutError:
                logger.info("closing idle MLLP connection from %s", peer)
                return
            finally:
                self._idle.discard(task)
            if not start:
                return
            if start != VT:
                logger.warning("bad MLLP framing from %s: closing the connection", peer)
                return
            try:
                # A sender that stops mid-frame gets the idle timeout too: nothing is applied.
                async with asyncio.timeout(self.idle_timeout):
                    body = await reader.readuntil(END)
            except TimeoutError:
                logger.warning("MLLP message from %s incomplete after %ss: closing", peer,
                               self.idle_timeout)
                return
            except asyncio.LimitOverrunError:
                logger.warning("MLLP message from %s is larger than the limit", peer)
                if self.too_large is not None:
                    head = await reader.read(4096)
                    writer.write(frame(await asyncio.to_thread(self.too_large, head)))
                    await writer.drain()
                return
            message = body[: -len(END)]
            if VT in message:
                logger.warning("bad MLLP framing from %s (start block inside a message)", peer)
                return
            if len(message) > self.max_message_bytes:
                if self.too_large is not None:
                    writer.write(frame(await asyncio.to_thread(self.too_large, message[:4096])))
                    await writer.drain()
                return
            ack = await asyncio.to_thread(self.handler, message, peer, subject)
            if ack:  # empty: the sender asked for no acknowledgement (MSH-15/16 NE)
                writer.write(frame(ack))
                await writer.drain()
