"""A NUL byte in an HL7 message: refused for what it is, never "resend later".

No HL7 v2 field may hold one, and PostgreSQL takes none in a text column: stored as it came, a
NUL failed the store, the message got AR "could not store, resend it later" and the HIS resent
it for ever. In process (``ris.hl7.handler.handle``, what the MLLP listener calls per frame).
"""

from __future__ import annotations

import pytest

from ris.hl7 import handler
from ris.models import InboundMessage
from tests.hl7.conftest import MESSAGES, read_ack
from worklist.models import Order

pytestmark = pytest.mark.django_db


def _order(control_id: bytes = b"NUL-1") -> bytes:
    message = (MESSAGES / "v231_orm_nw.hl7").read_bytes().replace(b"\r\n", b"\r")
    message = message.replace(b"\n", b"\r")
    fields = message.split(b"\r", 1)[0].split(b"|")
    return message.replace(b"|" + fields[9] + b"|", b"|" + control_id + b"|", 1)


def test_a_nul_in_a_field_is_refused_as_a_data_error_and_changes_nothing(catalogue):
    message = _order().replace(b"PID|", b"PID|\x00", 1)
    ack = read_ack(handler.handle(message, "test"))
    assert ack.code == "AR"
    assert "NUL" in ack.error and "resend" not in ack.error
    assert not Order.objects.exists()
    assert InboundMessage.objects.get().status == InboundMessage.Status.REJECTED


def test_a_nul_in_the_control_id_is_refused_and_recorded(catalogue):
    ack = read_ack(handler.handle(_order(b"NUL\x00-2"), "test"))
    assert ack.code == "AR" and "NUL" in ack.error
    stored = InboundMessage.objects.get()
    assert stored.control_id == "NUL\ufffd-2"
    assert bytes(stored.raw).count(b"\x00") == 1  # the bytes as they came
