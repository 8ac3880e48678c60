"""Pending C-FIND responses written straight to an association's socket, many per write.

pynetdicom sends every DIMSE response through its whole machinery: a response primitive, a
command set encoded by pydicom, P-DATA primitives queued to the DUL thread, the DUL state
machine, one ``send`` per PDU, and a 1 ms polling loop between each step. For a worklist query
with hundreds of matches that path, not the database or the identifier encoding, is most of the
server's time (docs/BENCHMARKS.md), and every association of the process shares one GIL for it.

Within one C-FIND the Pending responses differ only in their identifier: the command set is the
same bytes each time. ``PendingResponses`` encodes it once with pynetdicom's own message class,
frames each response as the P-DATA-TF PDUs pynetdicom would have sent (PS3.8 9.3.5, the peer's
maximum PDU length honoured), and writes them in batches with ``sendall``. The final response
(Success, Cancel, a failure) still goes through pynetdicom, after the last batch is on the wire,
so the message order on the association is unchanged.

It is only used where it is safe: a plain TCP socket (an ``SSLSocket`` may not be written by one
thread while the DUL thread reads it), and nothing of pynetdicom's still queued for sending.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from io import BytesIO

from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

logger = logging.getLogger("ris.dicom")

P_DATA_TF = b"\x04\x00"
COMMAND = 0x01  # message control header: command fragment
COMMAND_LAST = 0x03  # command, last fragment
DATASET = 0x00
DATASET_LAST = 0x02
FLUSH_BYTES = 64 * 1024  # a batch: a few dozen responses, one system call


def command_set(*, message_id: int, sop_class_uid: str, status: int) -> bytes:
    """The C-FIND-RSP command set (Implicit VR Little Endian, PS3.7 9.3.2.2) with a data set."""
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class_uid
    primitive.Status = status
    primitive.Identifier = BytesIO(b"\x00")  # only says that a data set follows
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    return encode(message.command_set, True, True)


def _pdus(context_id: int, control: int, last_control: int, data: bytes, max_pdu: int) -> bytes:
    """``data`` as P-DATA-TF PDUs of one PDV each, fragments sized for the peer's maximum."""
    size = max_pdu - 6 if max_pdu else len(data) or 1  # 6: PDV length, context ID, header
    out = bytearray()
    for start in range(0, max(len(data), 1), size):
        fragment = data[start : start + size]
        last = start + size >= len(data)
        out += P_DATA_TF + struct.pack(">I", len(fragment) + 6)
        out += struct.pack(">IBB", len(fragment) + 2, context_id, last_control if last else control)
        out += fragment
    return bytes(out)


class PendingResponses:
    """Pending responses of one C-FIND, buffered and written to the peer in batches."""

    def __init__(self, sock: socket.socket, *, context_id: int, command: bytes, max_pdu: int):
        self._socket = sock
        self._context_id = context_id
        self._max_pdu = max_pdu
        self._command = _pdus(context_id, COMMAND, COMMAND_LAST, command, max_pdu)  # same each time
        self._buffer = bytearray()
        self.sent = 0  # responses added, written or still buffered
        self.failed = False

    @classmethod
    def open(cls, event, status: int) -> PendingResponses | None:
        """A stream for this C-FIND request, or None where pynetdicom must send each response."""
        assoc = event.assoc
        sock = getattr(getattr(assoc.dul, "socket", None), "socket", None)
        if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
            return None
        if event.context.transfer_syntax.is_deflated:
            return None
        if not wait_until_sent(assoc):
            return None
        command = command_set(
            message_id=event.request.MessageID,
            sop_class_uid=event.request.AffectedSOPClassUID,
            status=status,
        )
        return cls(sock, context_id=event.context.context_id, command=command,
                   max_pdu=assoc.dimse.maximum_pdu_size or 0)

    def add(self, identifier: bytes) -> None:
        """Queue one Pending response; write the batch once it is large enough."""
        self._buffer += self._command
        self._buffer += _pdus(self._context_id, DATASET, DATASET_LAST, identifier, self._max_pdu)
        self.sent += 1
        if len(self._buffer) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered; blocks while the peer's window is full (back-pressure)."""
        if not self._buffer or self.failed:
            return
        try:
            self._socket.sendall(self._buffer)
        except OSError as exc:
            self.failed = True
            logger.warning("worklist responses could not be sent: %s", exc)
            return
        self._buffer.clear()


def wait_until_sent(assoc, limit: float = 5.0) -> bool:
    """Wait until pynetdicom has sent everything queued on ``assoc``; False if it could not.

    pynetdicom's DUL thread either sends a queued PDU or reads the socket on each turn, and sends
    first: a handler that queues responses faster than they go out starves the reader (a
    C-CANCEL is then seen only once the whole stream is queued), and bytes written straight to
    the socket could overtake queued ones.
    """
    outgoing = assoc.dul.to_provider_queue
    deadline = time.monotonic() + limit
    while outgoing.qsize() or not assoc.dul.event_queue.empty():
        if not assoc.is_established or time.monotonic() > deadline:
            return False
        time.sleep(0.0001)
    return True
