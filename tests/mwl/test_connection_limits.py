"""Hostile peers on the DICOM port (ris/dicom_server.py): connections that never associate hold
no association slot, one address cannot take every connection, and an announced PDU length over
RIS_DICOM_MAX_PDU_BYTES is refused at once. Against a real ``ris serve --only dicom``, with
DCMTK's findscu and pynetdicom as the honest peers and raw sockets as the attacker."""

from __future__ import annotations

import select
import socket
import struct
import time

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind, Verification

from tests.mwl.conftest import committed, standard_worklist
from tests.mwl.dcmtk import findscu
from tests.mwl.test_settings import _wait_for_port
from tests.service import RisService
from tests.service import test_database_url as database_url

# django_db: so that pytest-django creates the test database when this module runs alone.
pytestmark = [pytest.mark.dcmtk, pytest.mark.django_db]

MAX_ASSOCIATIONS = 5
PER_ADDRESS = 50
FIRST_PDU_SECONDS = 8
MAX_PDU = 65536
ATTACKER = "127.0.0.2"  # the whole 127/8 is loopback on Linux: a second source address


@pytest.fixture(scope="module")
def port(django_db_setup, django_db_blocker, tmp_path_factory):
    with committed(django_db_blocker):
        standard_worklist()
        service = RisService(
            data_dir=tmp_path_factory.mktemp("ris-limits"),
            database_url=database_url(),
            extra_env={
                "RIS_DICOM_MAX_ASSOCIATIONS": str(MAX_ASSOCIATIONS),
                "RIS_DICOM_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
                "RIS_DICOM_FIRST_PDU_TIMEOUT_SECONDS": str(FIRST_PDU_SECONDS),
                "RIS_DICOM_MAX_PDU_BYTES": str(MAX_PDU),
            },
        )
        service.start("--only", "dicom")
        try:
            _wait_for_port(service)
            yield service.dicom_port
        finally:
            service.stop(timeout=60)


def _idle_socket(port: int, source: str = ATTACKER) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(64) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _closed_now(sockets: list[socket.socket], expected: int = 0,
                within: float = 0.5) -> list[socket.socket]:
    """The sockets the server has closed (readable, and reading gives end of file or reset),
    waiting up to ``within`` seconds for ``expected`` of them (the acceptor closes one by one)."""
    closed: list[socket.socket] = []
    deadline = time.monotonic() + within
    while True:
        remaining = [sock for sock in sockets if sock not in closed]
        readable, _, _ = select.select(remaining, [], [], 0.2) if remaining else ([], [], [])
        closed += [sock for sock in readable if _closed_by_server(sock, 0.5)]
        if len(closed) >= expected and (expected or not readable):
            return closed
        if time.monotonic() > deadline:
            return closed


def test_200_idle_sockets_do_not_keep_findscu_from_its_answer(port):
    idle = [_idle_socket(port) for _ in range(200)]
    try:
        # The address's share is held open, the surplus closed at once ...
        refused = _closed_now(idle, expected=200 - PER_ADDRESS, within=FIRST_PDU_SECONDS / 2)
        assert len(refused) == 200 - PER_ADDRESS
        pending = [sock for sock in idle if sock not in refused]
        # ... and the pending ones, ten times the association maximum, hold no association slot.
        result = findscu(port, ["PatientID=PID-02"])
        assert result.final == "Success", result.output
        assert result.patient_ids == ["PID-02"]
        assert _closed_now(pending) == []  # still open: within their first-PDU timeout
    finally:
        for sock in idle:
            sock.close()


def test_a_connection_that_sends_no_association_request_is_closed_after_the_timeout(port):
    with _idle_socket(port) as sock:
        started = time.monotonic()
        assert _closed_by_server(sock, FIRST_PDU_SECONDS + 5)
        assert FIRST_PDU_SECONDS - 0.5 < time.monotonic() - started < FIRST_PDU_SECONDS + 3


def test_a_first_pdu_announcing_4_gib_is_aborted_at_once(port):
    with _idle_socket(port) as sock:
        sock.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFFF))
        sock.settimeout(2)
        reply = sock.recv(64)
    assert reply[:1] == b"\x07"  # A-ABORT (PS3.8 9.3.8), not a wait for 4 GiB


def test_a_first_pdu_that_is_not_an_association_request_is_aborted(port):
    with _idle_socket(port) as sock:
        sock.sendall(struct.pack(">BBL", 0x04, 0, 10) + b"\x00" * 10)  # P-DATA-TF first
        sock.settimeout(2)
        assert sock.recv(64)[:1] == b"\x07"


def test_a_pdu_over_the_limit_inside_an_association_is_aborted_at_once(port):
    ae = AE(ae_title="HOSTILE")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="RIS")
    assert assoc.is_established
    assert assoc.acceptor.maximum_length == MAX_PDU  # the limit announced in the A-ASSOCIATE-AC
    assoc.dul.socket.socket.sendall(struct.pack(">BBL", 0x04, 0, 0xFFFFFFFF))
    deadline = time.monotonic() + 5
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.05)
    assert assoc.is_aborted


def test_associations_over_the_maximum_are_rejected_as_local_limit_exceeded(port):
    ae = AE(ae_title="BUSY")
    ae.add_requested_context(ModalityWorklistInformationFind)
    held = [ae.associate("127.0.0.1", port, ae_title="RIS") for _ in range(MAX_ASSOCIATIONS)]
    try:
        assert all(assoc.is_established for assoc in held)
        extra = ae.associate("127.0.0.1", port, ae_title="RIS")
        assert extra.is_rejected
        rejection = extra.acceptor.primitive
        # rejected-transient, service provider (presentation), local limit exceeded (PS3.8 9.3.4)
        assert (rejection.result, rejection.result_source, rejection.diagnostic) == (2, 3, 2)
    finally:
        for assoc in held:
            assoc.release()
    time.sleep(0.5)
    assert findscu(port, ["PatientID=PID-02"]).final == "Success"


def _association_request(calling: bytes) -> bytes:
    """An A-ASSOCIATE-RQ (PS3.8 9.3.2) with one Verification context, the calling AE title
    given raw so that it can hold what no AE title may."""
    def item(kind: int, body: bytes) -> bytes:
        return struct.pack(">BBH", kind, 0, len(body)) + body

    application = item(0x10, b"1.2.840.10008.3.1.1.1")
    context = item(0x20, b"\x01\x00\x00\x00" + item(0x30, b"1.2.840.10008.1.1")
                   + item(0x40, b"1.2.840.10008.1.2"))
    user = item(0x50, item(0x51, struct.pack(">L", 16384)))
    body = (struct.pack(">HH", 1, 0) + b"RIS".ljust(16) + calling.ljust(16) + b"\x00" * 32
            + application + context + user)
    return struct.pack(">BBL", 0x01, 0, len(body)) + body


def test_undecodable_association_requests_do_not_use_up_the_address_share(port):
    """pynetdicom aborts an A-ASSOCIATE-RQ it cannot decode but would keep the association,
    and the address's connection slot, for its ACSE timeout: ris aborts it before that, so more
    than the address's share of them in a row leave the address able to associate at once."""
    for _ in range(PER_ADDRESS + 10):
        with _idle_socket(port) as sock:
            sock.sendall(_association_request(b"BAD\x04\xfe"))  # EOT and a non-ASCII byte
            sock.settimeout(5)
            assert sock.recv(64)[:1] == b"\x07"  # A-ABORT
    ae = AE(ae_title="HONEST")
    ae.add_requested_context(Verification)
    ae.acse_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="RIS", bind_address=(ATTACKER, 0))
    assert assoc.is_established
    assoc.release()
