"""MLLP over TLS with client certificates: required when RIS_MLLP_TLS_CA is set, and mapped to
HL7 senders (HL7Sender.certificate_subject): a sender with a certificate is accepted only over
it, and a certificate only for its sender. The listener is ours with its real TLS context and
handler; the client is Python's ssl over a plain socket, as an HIS interface engine connects."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from ris.hl7 import handler
from ris.management.commands.mllp import tls_context
from ris.models import HL7Sender, InboundMessage
from tests.hl7.conftest import END, VT, orm, read_ack, unframe
from tests.hl7.test_mllp import InProcessListener, read_reply
from tests.pki import make_ca, make_certificate
from worklist.models import AuditEvent, Order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("mllp-pki")
    make_ca(directory)
    make_certificate(directory, "server", "/CN=localhost")
    make_certificate(directory, "his", "/CN=HIS interface/O=Hospital")
    make_certificate(directory, "lab", "/CN=LAB interface/O=Hospital")
    return directory


@pytest.fixture
def listener(settings, pki, catalogue):
    settings.RIS_MLLP_TLS_CERT = str(pki / "server.crt")
    settings.RIS_MLLP_TLS_KEY = str(pki / "server.key")
    settings.RIS_MLLP_TLS_CA = str(pki / "ca.crt")
    HL7Sender.objects.create(application="HIS", certificate_subject="CN=HIS interface,O=Hospital")
    handler._sender_cache.clear()
    handler._certificate_owners = (float("-inf"), {})
    with InProcessListener(ssl_context=tls_context()) as running:
        yield running


def _send(port: int, pki: Path, message: bytes, key: str | None) -> bytes:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if key:
        context.load_cert_chain(pki / f"{key}.crt", pki / f"{key}.key")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(VT + message + END)
        return read_reply(tls)


def test_the_sender_over_its_own_certificate_is_accepted(listener, pki):
    ack = read_ack(unframe(_send(listener.port, pki, orm("C-1", "PL-C1"), "his")))
    assert ack.code == "AA"
    assert Order.objects.filter(placer_order_number="PL-C1").exists()


def test_a_connection_without_a_client_certificate_is_refused(listener, pki):
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        reply = _send(listener.port, pki, orm("C-2", "PL-C2"), None)
        assert reply == b""  # TLS 1.3 reports the refusal at the first read
        raise ConnectionError("closed without an answer")
    assert not Order.objects.filter(placer_order_number="PL-C2").exists()


def test_another_certificate_cannot_send_as_the_sender(listener, pki):
    ack = read_ack(unframe(_send(listener.port, pki, orm("C-3", "PL-C3"), "lab")))
    assert ack.code == "AR"
    assert "only over its TLS client certificate" in ack.text
    assert not Order.objects.filter(placer_order_number="PL-C3").exists()
    assert InboundMessage.objects.get(control_id="C-3").status == InboundMessage.Status.REJECTED
    assert AuditEvent.objects.filter(action="peer.authentication_failed", actor="HIS|HOSP").exists()


def test_a_senders_certificate_cannot_send_for_another_sender(listener, pki):
    message = orm("C-4", "PL-C4", sender="OTHER")
    ack = read_ack(unframe(_send(listener.port, pki, message, "his")))
    assert ack.code == "AR"
    assert "belongs to sender HIS" in ack.text


def test_senders_without_a_certificate_subject_are_accepted_over_any_trusted_one(listener, pki):
    ack = read_ack(unframe(_send(listener.port, pki, orm("C-5", "PL-C5", sender="OTHER"), "lab")))
    assert ack.code == "AA"
