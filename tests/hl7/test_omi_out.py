"""OMI^O23 out (IHE SWF.b RAD-4 / RAD-13): ris as Order Filler informs an Image Manager.

The HIS (the hl7 package's MLLP client) sends orders to a real ``ris serve``; the Image Manager
is the hl7 package's asyncio MLLP server (``HISReceiver``), configured in ris as an HL7
destination with ``swf_b_omi``. The service's scheduler delivers the queued messages.
"""

from __future__ import annotations

import time

import pytest

from ris.hl7 import notifications
from ris.models import HL7Destination, OutboundJob
from tests.factories import first_step
from tests.hl7.conftest import orm, read_ack, send
from tests.hl7.test_order_status import HISReceiver, wait_until
from tests.service import free_port
from worklist import services
from worklist.audit import Actor
from worklist.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def image_manager(port: int) -> HL7Destination:
    destination = HL7Destination.objects.create(
        name="IM", host="127.0.0.1", port=port, version="2.5.1", swf_b_omi=True,
        sending_application="RIS", receiving_application="ARCHIVE",
    )
    time.sleep(notifications._SWF_B_CACHE_SECONDS)  # the service's cache of SWF.b receivers
    return destination


def segments(message, name: str) -> list:
    return [s for s in message if str(s[0]) == name]


def test_a_new_order_from_the_his_reaches_the_image_manager_as_omi_with_ris_identifiers(
    hl7_service, catalogue
):
    port = free_port()
    image_manager(port)
    with HISReceiver(port) as archive:
        assert read_ack(send(hl7_service.mllp_port, orm("SWF-1", "PL-SWF-1"))).code == "AA"
        wait_until(lambda: len(archive.received) == 1, message="no OMI reached the archive")

    order = Order.objects.get()
    step = first_step(order)
    procedure = step.requested_procedure
    [message] = archive.received
    assert str(message.segment("MSH")[9]) == "OMI^O23^OMI_O23"
    assert str(message.segment("MSH")[12]) == "2.5.1"
    assert str(message.segment("ORC")[1]) == "NW"
    assert str(message.segment("TQ1")[7]) == "20261201100000"
    [ipc] = segments(message, "IPC")
    assert [str(ipc[n]) for n in range(1, 6)] == [
        order.accession_number, procedure.requested_procedure_id,
        procedure.study_instance_uid, step.sps_id, "CT",
    ]
    assert str(ipc[9]) == "CT1"
    # The archive has the message before ris has read its ACK and closed the job.
    wait_until(lambda: OutboundJob.objects.get().state == OutboundJob.State.DONE,
               message="the job was not marked delivered")


def test_a_cancel_from_the_his_is_told_to_the_image_manager_as_omi_ca(hl7_service, catalogue):
    port = free_port()
    image_manager(port)
    with HISReceiver(port) as archive:
        send(hl7_service.mllp_port, orm("SWF-2", "PL-SWF-2"))
        send(hl7_service.mllp_port, orm("SWF-3", "PL-SWF-2", order_control="CA"))
        wait_until(lambda: len(archive.received) == 2, message="the CA did not reach the archive")

    assert [str(m.segment("ORC")[1]) for m in archive.received] == ["NW", "CA"]
    assert str(archive.received[1].segment("ORC")[5]) == "CA"


def test_an_swf_b_destination_gets_no_order_status_messages(hl7_service, catalogue):
    """The order status (RAD-3) messages are for the HIS; an SWF.b receiver gets OMI only."""
    port = free_port()
    image_manager(port)
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=free_port())
    send(hl7_service.mllp_port, orm("SWF-4", "PL-SWF-4"))
    order = Order.objects.get()
    services.order_cancel(order=order, actor=Actor.system("test"), reason="test")

    kinds = sorted(
        (job.destination, job.payload["order_control"]) for job in OutboundJob.objects.all()
    )
    assert kinds == [("HIS", "OC"), ("IM", "CA"), ("IM", "NW")]


def test_a_receiver_switched_off_in_another_process_gets_no_job_from_a_warm_cache(catalogue):
    """The cache may say "there are receivers" for a few seconds after the last one went away
    in another process (no signal reaches this one): their names are read again per order."""
    from ris.hl7 import handler

    notifications.forget_swf_b()
    HL7Destination.objects.create(name="IM", host="127.0.0.1", port=free_port(), swf_b_omi=True)
    assert read_ack(handler.handle(orm("SWF-W1", "PL-SWF-W1"), "test")).code == "AA"
    assert OutboundJob.objects.filter(destination="IM").count() == 1

    HL7Destination.objects.filter(name="IM").update(active=False)  # no post_save: as elsewhere
    assert read_ack(handler.handle(orm("SWF-W2", "PL-SWF-W2"), "test")).code == "AA"

    assert OutboundJob.objects.filter(destination="IM").count() == 1


def test_an_xo_with_ipc_reaches_the_image_manager_with_the_new_station_and_protocol(
    hl7_service, catalogue
):
    from tests.hl7.test_omi import IPC_CT, omi
    from worklist.models import Device

    Device.objects.create(ae_title="CT2", modality="CT", station_name="CT2",
                          allow_overbooking=True)
    moved = IPC_CT.replace("PROT1^Head routine", "PROT2^Head contrast").replace(
        "|CT1|ROOM 3|CT1", "|CT2|ROOM 9|CT2")
    port = free_port()
    image_manager(port)
    with HISReceiver(port) as archive:
        assert read_ack(send(hl7_service.mllp_port, omi("SWF-XI-1"))).code == "AA"
        ack = read_ack(send(hl7_service.mllp_port, omi("SWF-XI-2", order_control="XO",
                                                     ipcs=(moved,))))
        assert ack.code == "AA", ack.error
        wait_until(lambda: len(archive.received) >= 2, message="no XO reached the archive")
        time.sleep(2)  # every XO of the change (move, then location and protocol)

    assert [str(m.segment("ORC")[1]) for m in archive.received][0] == "NW"
    assert {str(m.segment("ORC")[1]) for m in archive.received[1:]} == {"XO"}
    [ipc] = segments(archive.received[-1], "IPC")
    assert [str(ipc[n]) for n in (1, 4, 7, 8, 9)] == [
        "ACC-UP-1", "SPS-UP-1", "CT2", "ROOM 9", "CT2"
    ]
    assert str(ipc[6]).startswith("PROT2")
