"""Acknowledgement modes: original ACK by default; enhanced mode (MSH-15/16) with an accept
acknowledgement and an application response (ORR^O02, ORG^O20, ORI^O24) carrying the order's
identifiers; the per-sender option for application responses in original mode.

A real ``ris serve``; the hl7 package's MLLP client is the sender and reads every frame ris
writes; DCMTK findscu reads the worklist the identifiers must agree with.
"""

from __future__ import annotations

import socket

import hl7
import pytest
from hl7.client import MLLPClient
from pydicom import Dataset

from ris.models import HL7Sender, InboundMessage
from tests.hl7.conftest import END, orm, unframe
from tests.hl7.test_omi import IPC_CT, omi
from tests.mwl.dcmtk import findscu
from worklist.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def enhanced(raw: bytes, accept: str, application: str) -> bytes:
    """The message with MSH-15 / MSH-16 set (MSH-13, -14 left empty)."""
    msh, rest = raw.split(b"\r", 1)
    fields = msh.split(b"|")
    fields += [b""] * (17 - len(fields))
    fields[14], fields[15] = accept.encode(), application.encode()
    return b"|".join(fields) + b"\r" + rest


def exchange(port: int, message: bytes, frames: int) -> list[hl7.Message]:
    """Send ``message`` and read exactly ``frames`` replies (then nothing more for a moment)."""
    with MLLPClient("127.0.0.1", port) as client:
        client.socket.settimeout(30)
        data = client.send_message(message)
        while data.count(END) < frames:
            chunk = client.socket.recv(65536)
            assert chunk, f"connection closed after {data!r}"
            data += chunk
        client.socket.settimeout(0.5)
        try:
            extra = client.socket.recv(65536)
        except TimeoutError:
            extra = b""
        assert extra == b"", f"an unexpected further reply: {extra!r}"
    replies = [unframe(part + END) for part in data.split(END) if part.strip()]
    assert len(replies) == frames
    return [hl7.parse(reply.decode()) for reply in replies]


def msa(message: hl7.Message) -> tuple[str, str]:
    segment = message.segment("MSA")
    return str(segment[1]), str(segment[2])


def message_type(message: hl7.Message) -> str:
    return str(message.segment("MSH")[9])


def field(message: hl7.Message, segment: str, n: int, component: int | None = None) -> str:
    value = message.segment(segment)[n]
    return str(value[0][component - 1]) if component else str(value)


def worklist_accessions(port: int, patient_id: str) -> list[str]:
    query = Dataset()
    query.PatientID = patient_id
    query.AccessionNumber = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    result = findscu(port, query=query)
    assert result.returncode == 0, result.output
    return [ds.AccessionNumber for ds in result.responses]


def test_original_mode_stays_a_plain_ack(hl7_service, catalogue):
    [reply] = exchange(hl7_service.mllp_port, orm("ORIG-1", "PL-ORIG1"), 1)

    assert message_type(reply) == "ACK^O01"
    assert msa(reply) == ("AA", "ORIG-1")
    with pytest.raises(KeyError):
        reply.segment("ORC")


def test_enhanced_al_al_is_an_accept_ack_then_orr_with_filler_and_accession(
    hl7_service, catalogue
):
    message = enhanced(orm("ENH-1", "PL-ENH1", patient_id="P-ENH1"), "AL", "AL")

    accept, application = exchange(hl7_service.mllp_port, message, 2)

    assert message_type(accept) == "ACK^O01"
    assert msa(accept) == ("CA", "ENH-1")
    assert message_type(application) == "ORR^O02"
    assert msa(application) == ("AA", "ENH-1")
    order = Order.objects.get()
    assert field(application, "ORC", 1) == "OK"
    assert field(application, "ORC", 2, 1) == "PL-ENH1"
    assert field(application, "ORC", 3, 1) == order.accession_number
    assert field(application, "ORC", 5) == "SC"
    assert field(application, "OBR", 18) == order.accession_number
    procedure = order.procedures.get()
    assert field(application, "OBR", 19) == procedure.requested_procedure_id
    assert field(application, "OBR", 20) == procedure.steps.get().sps_id
    assert field(application, "PID", 3, 1) == "P-ENH1"
    # What the HIS was told is what the modality reads.
    assert worklist_accessions(hl7_service.dicom_port, "P-ENH1") == [order.accession_number]


def test_application_ack_only_is_one_org_o20_with_the_schedule(hl7_service, catalogue):
    message = enhanced(
        orm("ENH-2", "PL-ENH2", version="2.5.1", start="20261201100000"), "NE", "AL"
    )

    [application] = exchange(hl7_service.mllp_port, message, 1)

    assert message_type(application) == "ORG^O20^ORG_O20"
    assert msa(application) == ("AA", "ENH-2")
    assert field(application, "TQ1", 7) == "20261201100000"
    assert field(application, "OBR", 18) == Order.objects.get().accession_number


def test_omi_with_an_application_ack_is_ori_o24_with_the_ipc_as_on_the_worklist(
    hl7_service, catalogue
):
    message = enhanced(omi("ENH-3", ipcs=(IPC_CT,)), "NE", "AL")

    [application] = exchange(hl7_service.mllp_port, message, 1)

    assert message_type(application) == "ORI^O24^ORI_O24"
    assert msa(application) == ("AA", "ENH-3")
    ipc = application.segment("IPC")
    assert [str(ipc[n]) for n in (1, 2, 4, 5, 9)] == ["ACC-UP-1", "RP-UP-1", "SPS-UP-1", "CT",
                                                     "CT1"]
    assert worklist_accessions(hl7_service.dicom_port, "P-OMI") == ["ACC-UP-1"]


def test_a_refused_order_is_ca_then_ae_with_err_and_nothing_is_changed(hl7_service, catalogue):
    message = enhanced(orm("ENH-4", "PL-ENH4", code="NOSUCH"), "AL", "AL")

    accept, application = exchange(hl7_service.mllp_port, message, 2)

    assert msa(accept) == ("CA", "ENH-4")  # stored safely: kept for reprocessing
    assert msa(application) == ("AE", "ENH-4")
    assert "103" in str(application.segment("ERR"))
    assert field(application, "ORC", 1) == "UA"
    assert field(application, "ORC", 2, 1) == "PL-ENH4"
    assert not Order.objects.exists()
    assert InboundMessage.objects.get().status == InboundMessage.Status.ERROR


def test_an_unsupported_message_in_enhanced_mode_is_a_commit_reject(hl7_service, catalogue):
    message = (
        b"MSH|^~\\&|LAB|HOSP|RIS|RAD|20261130120000||ORU^R01^ORU_R01|ENH-5|P|2.5.1|||AL|AL\r"
        b"PID|1||P1^^^HOSP^MR\r"
    )

    [accept] = exchange(hl7_service.mllp_port, message, 1)

    assert msa(accept) == ("CR", "ENH-5")
    assert "200" in str(accept.segment("ERR"))


def test_success_only_conditions_send_nothing_for_an_error(hl7_service, catalogue):
    """MSH-15 SU, MSH-16 SU: the refused order gets a CA (it is stored) and no application
    acknowledgement; the next message on the connection is answered as usual."""
    refused = enhanced(orm("ENH-6", "PL-ENH6", code="NOSUCH"), "SU", "SU")
    good = orm("ENH-7", "PL-ENH7")
    with socket.create_connection(("127.0.0.1", hl7_service.mllp_port), timeout=30) as sock:
        sock.sendall(b"\x0b" + refused + END)
        sock.sendall(b"\x0b" + good + END)
        data = b""
        while data.count(END) < 2:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
    first, second = (hl7.parse(unframe(p + END).decode()) for p in data.split(END) if p.strip())
    assert msa(first) == ("CA", "ENH-6")
    assert msa(second) == ("AA", "ENH-7")


def test_ne_ne_is_applied_without_an_answer(hl7_service, catalogue):
    silent = enhanced(orm("ENH-8", "PL-ENH8"), "NE", "NE")
    with socket.create_connection(("127.0.0.1", hl7_service.mllp_port), timeout=30) as sock:
        sock.sendall(b"\x0b" + silent + END)
        sock.sendall(b"\x0b" + orm("ENH-9", "PL-ENH9") + END)
        data = b""
        while END not in data:
            data += sock.recv(65536)
    assert msa(hl7.parse(unframe(data).decode())) == ("AA", "ENH-9")
    assert set(Order.objects.values_list("placer_order_number", flat=True)) == {
        "PL-ENH8", "PL-ENH9"
    }


def test_a_resend_gets_both_replies_again_byte_for_byte(hl7_service, catalogue):
    message = enhanced(orm("ENH-10", "PL-ENH10"), "AL", "AL")
    first = exchange(hl7_service.mllp_port, message, 2)

    again = exchange(hl7_service.mllp_port, message, 2)

    assert [str(m) for m in again] == [str(m) for m in first]
    assert Order.objects.count() == 1


def test_a_sender_configured_for_application_responses_gets_orr_in_original_mode(
    hl7_service, catalogue
):
    # (A sender name of its own: the listener caches a sender's options for 10 s.)
    HL7Sender.objects.create(application="ORRHIS", application_response=True)

    [reply] = exchange(hl7_service.mllp_port, orm("CFG-1", "PL-CFG1", sender="ORRHIS"), 1)

    assert message_type(reply) == "ORR^O02"
    assert msa(reply) == ("AA", "CFG-1")
    assert field(reply, "ORC", 3, 1) == Order.objects.get().accession_number


def test_a_cancel_with_an_application_ack_answers_cr(hl7_service, catalogue):
    exchange(hl7_service.mllp_port, orm("ENH-11", "PL-ENH11"), 1)

    [reply] = exchange(
        hl7_service.mllp_port,
        enhanced(orm("ENH-12", "PL-ENH11", order_control="CA"), "NE", "AL"), 1,
    )

    assert msa(reply) == ("AA", "ENH-12")
    assert field(reply, "ORC", 1) == "CR"
    assert field(reply, "ORC", 5) == "CA"


def test_accept_ack_only_is_answered_as_original_mode_so_refusals_stay_visible(
    hl7_service, catalogue
):
    """MSH-15 AL / MSH-16 NE, as many feeds send by habit: one ACK, AE with ERR for a refusal,
    never a CA that would hide it."""
    [good] = exchange(hl7_service.mllp_port, enhanced(orm("HAB-1", "PL-HAB1"), "AL", "NE"), 1)
    [bad] = exchange(
        hl7_service.mllp_port, enhanced(orm("HAB-2", "PL-HAB2", code="NOSUCH"), "AL", "NE"), 1
    )

    assert (message_type(good), msa(good)) == ("ACK^O01", ("AA", "HAB-1"))
    assert msa(bad) == ("AE", "HAB-2")
    assert "103" in str(bad.segment("ERR"))
    assert Order.objects.count() == 1
