"""Batched Pending responses (worklist/mwl/dimse_stream.py): the same PDUs pynetdicom would
send, read by real SCUs at any maximum PDU length, and a C-CANCEL honoured between two responses."""

from __future__ import annotations

import socket
from io import BytesIO
from types import SimpleNamespace

import pytest
from pydicom import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import ModalityWorklistInformationFind

from tests.mwl.conftest import ACTIVE, committed, standard_worklist
from worklist.mwl import scp as mwl_scp
from worklist.mwl.dimse_stream import PendingResponses, command_set

pytestmark = [pytest.mark.dcmtk]

MWL = str(ModalityWorklistInformationFind)


@pytest.fixture(scope="module")
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        standard_worklist()
        yield ris_service.dicom_port


def _pynetdicom_pdus(identifier: bytes, max_pdu: int) -> bytes:
    """What pynetdicom itself puts on the wire for one Pending C-FIND-RSP."""
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = 3
    primitive.AffectedSOPClassUID = MWL
    primitive.Status = 0xFF00
    primitive.Identifier = BytesIO(identifier)
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    out = b""
    for pdata in message.encode_msg(1, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(pdata)
        out += pdu.encode()
    return out


def _streamed(identifiers: list[bytes], max_pdu: int) -> bytes:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        command = command_set(message_id=3, sop_class_uid=MWL, status=0xFF00)
        stream = PendingResponses(ours, context_id=1, command=command, max_pdu=max_pdu)
        for identifier in identifiers:
            stream.add(identifier)
        stream.flush()
        ours.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("max_pdu", [0, 16384, 128, 50])
def test_a_batched_response_is_byte_identical_to_pynetdicoms_pdus(max_pdu):
    identifier = bytes(range(256)) * 3
    assert _streamed([identifier], max_pdu) == _pynetdicom_pdus(identifier, max_pdu)


def test_many_responses_are_written_back_to_back_in_order():
    identifiers = [f"item {n:04d}".encode() * 40 for n in range(300)]
    single = b"".join(_pynetdicom_pdus(i, 16384) for i in identifiers)
    assert _streamed(identifiers, 16384) == single


@pytest.mark.parametrize("max_pdu", [1024, 4096, 0])
def test_an_scu_with_a_small_maximum_pdu_gets_the_whole_worklist(port, max_pdu):
    ae = AE(ae_title="SMALLPDU")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.maximum_pdu_size = max_pdu
    assoc = ae.associate("127.0.0.1", port, ae_title="RIS")
    assert assoc.is_established
    query = Dataset()
    query.PatientName = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    query.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID = ""
    found, statuses = set(), []
    for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
        statuses.append(status.Status)
        if identifier is not None and status.Status == 0xFF00:
            found.add(str(identifier.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID))
    assoc.release()
    assert statuses[-1] == 0x0000
    assert found == ACTIVE


class _CancelAfter:
    """A stand-in for pynetdicom's C-FIND event whose C-CANCEL arrives after ``n`` responses.

    No real SCU can time its C-CANCEL to land between two batched responses (they leave within
    microseconds of each other), so the check between responses is driven from here, on a real
    socket pair."""

    def __init__(self, sock: socket.socket, n: int, stream: PendingResponses) -> None:
        self._n, self._stream = n, stream
        self.context = SimpleNamespace(transfer_syntax=ImplicitVRLittleEndian)
        self.assoc = SimpleNamespace(abort=lambda: None)

    @property
    def is_cancelled(self) -> bool:
        return self._stream.sent >= self._n


def test_a_cancel_between_batched_responses_ends_the_stream_with_cancel():
    rows = [{"n": n} for n in range(20)]
    def encode(row: dict) -> bytes:
        return f"row {row['n']}".encode()

    ours, theirs = socket.socketpair()
    with ours, theirs:
        command = command_set(message_id=3, sop_class_uid=MWL, status=0xFF00)
        stream = PendingResponses(ours, context_id=1, command=command, max_pdu=0)
        event = _CancelAfter(ours, 5, stream)
        finals = list(mwl_scp._send_directly(event, stream, encode, rows))
        ours.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := theirs.recv(65536):
            received += chunk
    assert finals == [(mwl_scp.CANCEL, None)]
    assert received == b"".join(_pynetdicom_pdus(f"row {n}".encode(), 0) for n in range(5))

