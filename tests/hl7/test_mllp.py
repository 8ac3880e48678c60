"""The MLLP listener: framing, limits, dropped connections, timeouts, TLS.

Against the real ``ris serve`` where the behaviour is the listener's; the idle timeout and TLS
use our ``MLLPServer`` in this process (with the real handler) so they need no second server.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time

import pytest
from hl7.client import MLLPClient

from ris.hl7 import handler
from ris.hl7.mllp import MLLPServer
from ris.models import InboundMessage
from tests.hl7.conftest import END, VT, orm, raw_connection, read_ack, send, unframe
from tests.service import free_port
from worklist.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def read_reply(sock: socket.socket, timeout: float = 30) -> bytes:
    """Bytes until the peer sent a whole frame or closed the connection."""
    sock.settimeout(timeout)
    data = b""
    while END not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_message_over_one_mib_gets_ar_and_nothing_is_applied(hl7_service, catalogue):
    note = b"\rNTE|1||" + b"x" * (1024 * 1024 + 10)
    message = orm("BIG-1", "PL-BIG").replace(b"PV1|1|O|RAD", b"PV1|1|O|RAD" + note)
    with raw_connection(hl7_service.mllp_port) as sock:
        sock.sendall(VT + message + END)
        reply = read_reply(sock)

    ack = read_ack(unframe(reply))
    assert ack.code == "AR"
    assert ack.control_id == "BIG-1"
    assert "larger than the maximum" in ack.text
    assert not Order.objects.exists()
    assert InboundMessage.objects.get(control_id="BIG-1").status == "REJECTED"
    assert read_ack(send(hl7_service.mllp_port, orm("AFTER-BIG", "PL-OK"))).code == "AA"


def test_bad_framing_closes_that_connection_and_others_keep_working(hl7_service, catalogue):
    with raw_connection(hl7_service.mllp_port) as bad, MLLPClient(
        "127.0.0.1", hl7_service.mllp_port
    ) as good:
        bad.sendall(orm("NOVT-1", "PL-NOVT") + END)  # no start block
        assert read_reply(bad) == b""  # closed without an answer
        ack = read_ack(unframe(good.send_message(orm("GOOD-1", "PL-GOOD"))))

    assert ack.code == "AA"
    assert list(Order.objects.values_list("placer_order_number", flat=True)) == ["PL-GOOD"]


def test_connection_dropped_mid_message_applies_nothing_and_gets_no_ack(hl7_service, catalogue):
    message = orm("HALF-1", "PL-HALF")
    with raw_connection(hl7_service.mllp_port) as sock:
        sock.sendall(VT + message[: len(message) // 2])
        time.sleep(0.2)
    # The listener is still there, and the half message left no trace.
    assert read_ack(send(hl7_service.mllp_port, orm("NEXT-1", "PL-NEXT"))).code == "AA"
    assert not Order.objects.filter(placer_order_number="PL-HALF").exists()
    assert not InboundMessage.objects.filter(control_id="HALF-1").exists()


def test_message_arriving_in_small_pieces_is_reassembled(hl7_service, catalogue):
    message = VT + orm("PIECES-1", "PL-PIECES") + END
    with raw_connection(hl7_service.mllp_port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(message), 7):
            sock.sendall(message[i : i + 7])
            time.sleep(0.001)
        ack = read_ack(unframe(read_reply(sock)))
    assert ack.code == "AA"


def _senders_at_once(port: int, senders: int, each: int, prefix: str) -> list[str]:
    """The ACK codes of ``senders`` connections at once, each sending ``each`` orders in turn."""
    results: list[str] = []

    def client(n: int) -> None:
        with MLLPClient("127.0.0.1", port) as c:
            for i in range(each):
                reply = unframe(c.send_message(orm(f"{prefix}{n}-{i}", f"PL-{prefix}{n}-{i}")))
                results.append(read_ack(reply).code)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_concurrent_connections_are_all_answered(hl7_service, catalogue):
    assert _senders_at_once(hl7_service.mllp_port, 4, 5, "C") == ["AA"] * 20
    assert Order.objects.count() == 20


def test_two_listener_processes_share_the_port_and_answer_every_connection(
        new_ris_service, catalogue):
    """RIS_MLLP_PROCESSES=2: two MLLP listeners on one port (SO_REUSEPORT); twelve senders at
    once, each its messages in order on its own connection, every message AA and applied once."""
    service = new_ris_service("--only", "mllp", RIS_MLLP_PROCESSES="2")
    deadline = time.monotonic() + 60
    while service.log().count(f"mllp://127.0.0.1:{service.mllp_port}") < 2:
        assert time.monotonic() < deadline, service.log()
        time.sleep(0.2)
    listeners = subprocess.run(["pgrep", "-f", "-P", str(service.process.pid), "ris.cli mllp"],
                               capture_output=True, text=True).stdout.split()
    assert len(listeners) == 2
    assert _senders_at_once(service.mllp_port, 12, 3, "P") == ["AA"] * 36
    assert Order.objects.count() == 36


class InProcessListener:
    """Our MLLPServer with the real handler, on an event loop in a thread of the test process."""

    def __init__(self, *, idle_timeout: float = 30, ssl_context=None,
                 max_connections_per_address: int = 0) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server = MLLPServer(
            handler.handle, idle_timeout=idle_timeout, too_large=handler.too_large,
            max_connections_per_address=max_connections_per_address,
        )
        self.ready = threading.Event()
        self.ssl_context = ssl_context
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(
            self.server.start("127.0.0.1", self.port, ssl=self.ssl_context)
        )
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self):
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.stop(1), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_idle_connection_is_closed_after_the_timeout(catalogue):
    with InProcessListener(idle_timeout=0.3) as listener, raw_connection(listener.port) as sock:
        started = time.monotonic()
        assert read_reply(sock, timeout=5) == b""
        assert time.monotonic() - started < 3


def _connect_from(source: str, port: int) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(30)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def test_one_address_cannot_hold_more_connections_than_its_limit(catalogue):
    with InProcessListener(max_connections_per_address=3) as listener:
        held = [_connect_from("127.0.0.2", listener.port) for _ in range(3)]
        try:
            time.sleep(0.3)  # the listener has accepted and counted them
            with _connect_from("127.0.0.2", listener.port) as extra:
                assert read_reply(extra, timeout=5) == b""  # closed at once, unanswered
            # Another address is not affected, and speaks real MLLP (python-hl7's client).
            assert read_ack(send(listener.port, orm("LIMIT-1", "PL-LIMIT"))).code == "AA"
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        with _connect_from("127.0.0.2", listener.port) as again:  # slots freed on close
            again.sendall(VT + orm("LIMIT-2", "PL-LIMIT2") + END)
            assert read_ack(unframe(read_reply(again))).code == "AA"


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_listener_accepts_a_message_over_tls(catalogue, certificate):
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    with InProcessListener(ssl_context=server_context) as listener:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as raw, \
                client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(VT + orm("TLS-1", "PL-TLS") + END)
            ack = read_ack(unframe(read_reply(tls)))
    assert ack.code == "AA"
    assert Order.objects.filter(placer_order_number="PL-TLS").exists()
