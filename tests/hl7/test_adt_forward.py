"""Identity changes reach the archives that keep patients, as ADT (A08, A40, A47, A24, A37).

The HIS is the hl7 package's MLLP client sending to a real ``ris serve``; the archive is the
hl7 package's asyncio MLLP server (``HISReceiver``), configured in ris as an HL7 destination
with ``send_patient_updates``; the service's scheduler delivers the queued messages.
"""

from __future__ import annotations

import pytest

from ris.models import HL7Destination, OutboundJob
from tests.his import HISReceiver
from tests.hl7.conftest import orm, read_ack, send
from tests.hl7.test_identity import adt
from tests.hl7.test_order_status import wait_until
from tests.service import free_port
from worklist import services
from worklist.audit import Actor
from worklist.models import Patient

pytestmark = pytest.mark.django_db(transaction=True)


def archive_destination(port: int) -> HL7Destination:
    return HL7Destination.objects.create(
        name="ARCHIVE", host="127.0.0.1", port=port, version="2.5.1",
        send_order_status=False, send_patient_updates=True,
        sending_application="RIS", receiving_application="DCM4CHEE",
    )


def deliver(service, raw: bytes) -> None:
    ack = read_ack(send(service.mllp_port, raw))
    assert ack.code == "AA", ack.error


def received(archive: HISReceiver, count: int) -> list:
    wait_until(lambda: len(archive.received) >= count, message="no ADT reached the archive")
    return archive.received


def field(message, segment: str, n: int) -> str:
    return str(message.segment(segment)[n])


def test_an_a47_from_the_his_is_forwarded_with_the_prior_id(hl7_service, catalogue):
    port = free_port()
    archive_destination(port)
    deliver(hl7_service, orm("FW-1", "PL-FW1", patient_id="TMP-9"))
    with HISReceiver(port) as archive:
        deliver(hl7_service, adt("FW-2", "A47", "PID|1||MRN-9^^^HOSP^MR||Doe^Jane||19700101|F",
                                 "MRG|TMP-9^^^HOSP^MR"))
        [message] = received(archive, 1)

    assert field(message, "MSH", 9) == "ADT^A47^ADT_A30"
    assert field(message, "PID", 3) == "MRN-9^^^HOSP"
    assert field(message, "MRG", 1) == "TMP-9^^^HOSP"
    # (the archive has the message before ris has read its ACK and closed the job)
    wait_until(
        lambda: OutboundJob.objects.get(kind="hl7.patient").state == OutboundJob.State.DONE,
        message="the ADT job was not marked delivered",
    )


def test_an_a40_merge_is_forwarded(hl7_service, catalogue):
    port = free_port()
    archive_destination(port)
    deliver(hl7_service, orm("FW-3", "PL-FW3", patient_id="OLD-1"))
    deliver(hl7_service, orm("FW-4", "PL-FW4", patient_id="NEW-1"))
    with HISReceiver(port) as archive:
        deliver(hl7_service, adt("FW-5", "A40", "PID|1||NEW-1^^^HOSP^MR||Doe^Jane",
                                 "MRG|OLD-1^^^HOSP^MR", structure="ADT_A39"))
        [message] = received(archive, 1)

    assert field(message, "MSH", 9) == "ADT^A40^ADT_A39"
    assert field(message, "PID", 3) == "NEW-1^^^HOSP"
    assert field(message, "MRG", 1) == "OLD-1^^^HOSP"


def test_a_name_corrected_in_ris_is_forwarded_as_a08(hl7_service, catalogue):
    port = free_port()
    archive_destination(port)
    deliver(hl7_service, orm("FW-6", "PL-FW6", patient_id="P-FW6"))
    patient = Patient.objects.get()
    with HISReceiver(port) as archive:
        services.patient_update(patient=patient, actor=Actor.system("test"), name="Roe^Janet")
        [message] = received(archive, 1)

    assert field(message, "MSH", 9) == "ADT^A08^ADT_A01"
    assert field(message, "PID", 3) == "P-FW6^^^HOSP"
    assert str(message.segment("PID")[5]).startswith("Roe^Janet")
    assert field(message, "PV1", 2) == "N"


def test_a_link_is_forwarded_as_a24_with_both_patients(hl7_service, catalogue):
    port = free_port()
    archive_destination(port)
    deliver(hl7_service, orm("FW-7", "PL-FW7", patient_id="LNK-1"))
    deliver(hl7_service, orm("FW-8", "PL-FW8", patient_id="LNK-2"))
    with HISReceiver(port) as archive:
        deliver(hl7_service, adt("FW-9", "A24", "PID|1||LNK-1^^^HOSP^MR||Doe^Jane",
                                 "PID|2||LNK-2^^^HOSP^MR||Doe^Jane", structure="ADT_A24"))
        [message] = received(archive, 1)

    assert field(message, "MSH", 9) == "ADT^A24^ADT_A24"
    pids = [s for s in message if str(s[0]) == "PID"]
    assert [str(p[3]) for p in pids] == ["LNK-1^^^HOSP", "LNK-2^^^HOSP"]


def test_a_destination_without_patient_updates_gets_no_adt(hl7_service, catalogue):
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=free_port())
    deliver(hl7_service, orm("FW-10", "PL-FW10", patient_id="TMP-10"))
    deliver(hl7_service, adt("FW-11", "A47", "PID|1||MRN-10^^^HOSP^MR||Doe^Jane",
                             "MRG|TMP-10^^^HOSP^MR"))

    assert not OutboundJob.objects.filter(kind="hl7.patient").exists()
