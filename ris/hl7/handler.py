"""Entry point of every inbound HL7 message: bytes in, ACK bytes out (after commit).

Until message types are implemented, every message is refused with AR/200 so the sender keeps it
and can resend it later: an AA for something we did not apply would lose it.
"""

from __future__ import annotations

from ris.hl7.ack import build_ack, read_msh


def handle(message: bytes, peer: str) -> bytes:
    msh = read_msh(message)
    if not msh:
        return build_ack({}, "AR", "message does not start with an MSH segment", "100")
    return build_ack(
        msh, "AR", f"unsupported message type {msh.get('message_type')!r}", "200"
    )


def too_large(head: bytes) -> bytes:
    return build_ack(read_msh(head), "AR", "message larger than the configured maximum", "207")
