"""A minimal blocking Modality Worklist SCU for timing servers, not for production.

Process start-up of a DCMTK tool (~25 ms here, loading its data dictionary) and pynetdicom's
polling threads on the client side (~15 ms per association) are each larger than a fast
server's whole answer, so neither can show whether a query including its association takes
20 ms. This client does only what the wire needs, in one thread: A-ASSOCIATE-RQ (Implicit VR
Little Endian), one C-FIND-RQ, read PDUs until the final response, A-RELEASE-RQ. Command sets
and identifiers are encoded by pynetdicom/pydicom; framing follows PS3.8 9.3.
"""

from __future__ import annotations

import socket
import struct
from io import BytesIO

from pydicom import Dataset
from pynetdicom.dimse_messages import C_FIND_RQ
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF

MWL_FIND = "1.2.840.10008.5.1.4.31"
IMPLICIT_LE = "1.2.840.10008.1.2"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLEMENTATION_UID = "1.2.826.0.1.3680043.10.543.99"
STATUS_TAG = b"\x00\x00\x00\x09"  # (0000,0900) in little endian tag order


def _item(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(payload)) + payload


def associate_rq(calling: str, called: str, max_pdu: int = 16384) -> bytes:
    context = _item(0x30, MWL_FIND.encode()) + _item(0x40, IMPLICIT_LE.encode())
    user = _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, IMPLEMENTATION_UID.encode())
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16).encode()
        + calling.ljust(16).encode()
        + bytes(32)
        + _item(0x10, APPLICATION_CONTEXT.encode())
        + _item(0x20, struct.pack(">BBBB", 1, 0, 0, 0) + context)
        + _item(0x50, user)
    )
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def find_rq(identifier: Dataset, message_id: int = 1) -> bytes:
    primitive = C_FIND()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = MWL_FIND
    primitive.Priority = 2
    primitive.Identifier = BytesIO(encode(identifier, True, True))
    message = C_FIND_RQ()
    message.primitive_to_message(primitive)
    out = b""
    for pdata in message.encode_msg(1, 16384):
        pdu = P_DATA_TF()
        pdu.from_primitive(pdata)
        out += pdu.encode()
    return out


def _read_exactly(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise ConnectionError("peer closed the connection")
    return data


def _read_pdu(stream) -> tuple[int, bytes]:
    kind, _, length = struct.unpack(">BBI", _read_exactly(stream, 6))
    return kind, _read_exactly(stream, length)


def _status(command: bytes) -> int:
    at = 0
    while at < len(command):
        tag, length = command[at : at + 4], struct.unpack("<I", command[at + 4 : at + 8])[0]
        if tag == STATUS_TAG:
            return struct.unpack("<H", command[at + 8 : at + 10])[0]
        at += 8 + length
    raise ValueError("command set without a Status")


def query(host: str, port: int, called: str, request: bytes,
          calling: str = "RAWSCU") -> tuple[int, int]:
    """Associate, one C-FIND (``request``: the PDUs of ``find_rq``, encoded before the clock
    starts), release: (number of Pending responses, final status)."""
    with socket.create_connection((host, port)) as sock, sock.makefile("rb") as stream:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(associate_rq(calling, called))
        kind, _ = _read_pdu(stream)
        if kind != 0x02:
            raise ConnectionError(f"association not accepted (PDU type {kind:#x})")
        sock.sendall(request)
        pending, command = 0, b""
        while True:
            kind, body = _read_pdu(stream)
            if kind != 0x04:
                raise ConnectionError(f"unexpected PDU type {kind:#x}")
            at = 0
            while at < len(body):
                length = struct.unpack(">I", body[at : at + 4])[0]
                header, value = body[at + 5], body[at + 6 : at + 4 + length]
                at += 4 + length
                if header & 0x01:  # command fragment
                    command += value
                    if header & 0x02:
                        status, command = _status(command), b""
                        if status in (0xFF00, 0xFF01):
                            pending += 1
                        else:
                            sock.sendall(struct.pack(">BBII", 0x05, 0, 4, 0))
                            _read_pdu(stream)  # A-RELEASE-RP
                            return pending, status
