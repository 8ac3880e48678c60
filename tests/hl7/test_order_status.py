"""Order status to the HIS: queued with the change, delivered through the outbound queue.

The HIS is played by the python ``hl7`` package's asyncio MLLP server (an independent MLLP
implementation) answering with ``Message.create_ack``. Delivery is done by the dedicated
``ris serve``'s scheduler and, in the first test, by two extra drain workers in this process.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from ris import outbound_queue
from ris.models import HL7Destination, OutboundJob
from tests.factories import at, first_step, make_order
from tests.his import HISReceiver
from tests.hl7.conftest import orm, read_ack, send
from tests.service import free_port
from worklist import services
from worklist.audit import Actor
from worklist.models import Order, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)
State = OutboundJob.State


def wait_until(condition, timeout: float = 90.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out: {message}")


def destination(port: int, **fields) -> HL7Destination:
    return HL7Destination.objects.create(
        name=fields.pop("name", "HIS"), host="127.0.0.1", port=port, **fields
    )


def perform(order: Order) -> None:
    """The modality starts and completes the order's step (as MPPS would)."""
    step = first_step(order)
    services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.ae("CT1"))
    services.step_transition(step=step, to=StepStatus.COMPLETED, actor=Actor.ae("CT1"))


def drain_worker(stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            outbound_queue.drain(worker=f"test-{threading.get_ident()}")
            time.sleep(0.1)
    finally:
        connection.close()


def test_status_messages_reach_a_his_that_was_down_once_each_in_order(hl7_service, catalogue):
    port = free_port()
    destination(port, version="2.3.1")
    orders = [
        make_order(procedure_type=catalogue.cthead, station=catalogue.ct1, start=at(8 + i))
        for i in range(4)
    ]
    for order in orders:
        perform(order)
    assert OutboundJob.objects.filter(kind="hl7.order_status").count() == 8

    # The HIS is down: the server's scheduler tries, fails and backs off.
    wait_until(
        lambda: OutboundJob.objects.filter(attempts__gte=1, state=State.PENDING).exists(),
        message="no delivery attempt while the HIS was down",
    )
    stop = threading.Event()
    workers = [threading.Thread(target=drain_worker, args=(stop,)) for _ in range(2)]
    with HISReceiver(port) as his:
        for worker in workers:
            worker.start()
        try:
            wait_until(
                lambda: OutboundJob.objects.filter(state=State.DONE).count() == 8,
                message="not every status message was delivered",
            )
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)

    control_ids = [str(m.segment("MSH")[10]) for m in his.received]
    assert sorted(control_ids) == sorted(f"RIS{j.pk}" for j in OutboundJob.objects.all())
    by_order: dict[str, list[str]] = defaultdict(list)
    for message in his.received:
        orc = message.segment("ORC")
        assert str(orc[1]) == "SC"
        by_order[str(message.segment("OBR")[18])].append(str(orc[5]))
    assert by_order == {order.accession_number: ["IP", "CM"] for order in orders}


def test_an_ae_from_the_his_fails_the_job_until_retried(hl7_service, catalogue):
    port = free_port()
    destination(port, version="2.3.1")
    order = make_order(procedure_type=catalogue.cthead, station=catalogue.ct1, start=at(9))
    with HISReceiver(port, ack_code="AE") as his:
        services.step_transition(
            step=first_step(order), to=StepStatus.STARTED, actor=Actor.ae("CT1")
        )
        job = OutboundJob.objects.get()
        wait_until(lambda: OutboundJob.objects.get(pk=job.pk).state == State.FAILED)
        assert "answered AE" in OutboundJob.objects.get(pk=job.pk).last_error

        his.ack_code = "AA"
        outbound_queue.retry([job.pk])
        wait_until(lambda: OutboundJob.objects.get(pk=job.pk).state == State.DONE)
    assert [str(m.segment("MSH")[10]) for m in his.received] == [f"RIS{job.pk}"] * 2


def test_a_cancel_decided_in_ris_is_sent_as_oc_in_the_destinations_version_and_charset(
    hl7_service, catalogue
):
    port = free_port()
    destination(port, version="2.5.1", charset="GB18030")
    patient = make_order(procedure_type=catalogue.ct001).patient
    patient.name_alphabetic, patient.name_ideographic = "Wang^Tao", "王^弢"
    patient.save()
    order = make_order(
        patient=patient, procedure_type=catalogue.ct001, station=catalogue.ct1, start=at(10)
    )
    with HISReceiver(port, encoding="gb18030") as his:
        services.order_cancel(order=order, actor=Actor.system("front desk"), reason="no show")
        wait_until(lambda: len(his.received) == 1)

    message = his.received[0]
    assert str(message.segment("MSH")[9]) == "OMG^O19^OMG_O19"
    assert str(message.segment("MSH")[12]) == "2.5.1"
    assert str(message.segment("MSH")[18]) == "GB 18030-2000"
    assert str(message.segment("PID")[5]) == "Wang^Tao^^^^^L^A~王^弢^^^^^L^I"
    assert (str(message.segment("ORC")[1]), str(message.segment("ORC")[5])) == ("OC", "CA")
    assert str(message.segment("OBR")[4]) == "CT001^胸部CT平扫^L"


def test_a_cancel_requested_by_the_his_is_not_echoed_back(hl7_service, catalogue):
    destination(free_port())
    send(hl7_service.mllp_port, orm("NW-E", "PL-E"))
    ack = read_ack(send(hl7_service.mllp_port, orm("CA-E", "PL-E", order_control="CA")))

    assert ack.code == "AA"
    assert Order.objects.get(placer_order_number="PL-E").status == "CA"
    assert not OutboundJob.objects.exists(), list(OutboundJob.objects.values("kind", "payload"))


# --- a step booked or moved (worklist.signals.step_rescheduled) -----------------------------


def ts(moment) -> str:
    """An HL7 TS in the department's time zone, as ris writes it."""
    return timezone.localtime(moment).strftime("%Y%m%d%H%M%S")


def front_desk() -> Actor:
    return Actor.for_user(get_user_model().objects.create_user("desk"))


def deliver_until(his: HISReceiver, count: int) -> None:
    """Drain the queue in this process until the HIS holds ``count`` messages."""
    wait_until(
        lambda: outbound_queue.drain(time_budget=5) >= 0 and len(his.received) >= count,
        message=f"the HIS did not receive {count} message(s)",
    )


def test_moving_a_step_queues_one_status_message_per_destination_with_the_new_time(catalogue):
    destination(free_port(), name="HIS-A", version="2.3.1")
    destination(free_port(), name="HIS-B", version="2.5.1")
    order = make_order(procedure_type=catalogue.cthead, station=catalogue.ct1, start=at(9))
    queued = OutboundJob.objects.count()

    services.step_schedule(step=first_step(order), start=at(14, 30), actor=front_desk())

    jobs = OutboundJob.objects.order_by("pk")[queued:]
    assert sorted(job.destination for job in jobs) == ["HIS-A", "HIS-B"]
    for job in jobs:
        assert (job.payload["order_control"], job.payload["order_status"]) == ("SC", "SC")
        assert job.payload["procedures"][0]["start"] == ts(at(14, 30))
        assert job.payload["procedures"][0]["end"] == ts(at(14, 50))
        assert job.ordering_key == f"{job.destination}:order:{order.pk}"


def test_booking_a_waiting_step_queues_one_status_message_with_its_time(catalogue):
    destination(free_port())
    order = make_order(procedure_type=catalogue.cthead)
    assert first_step(order).status == StepStatus.UNSCHEDULED
    queued = OutboundJob.objects.count()

    services.step_schedule(
        step=first_step(order), start=at(11), station=catalogue.ct1, actor=front_desk()
    )

    [job] = OutboundJob.objects.order_by("pk")[queued:]
    assert job.payload["order_status"] == "SC"
    assert job.payload["procedures"][0]["start"] == ts(at(11))


def test_a_move_that_is_rolled_back_queues_no_status_message(catalogue):
    destination(free_port())
    order = make_order(procedure_type=catalogue.cthead, station=catalogue.ct1, start=at(9))
    queued = OutboundJob.objects.count()

    with pytest.raises(RuntimeError), transaction.atomic():
        services.step_schedule(step=first_step(order), start=at(15), actor=front_desk())
        raise RuntimeError("the request failed after the move")

    assert OutboundJob.objects.count() == queued
    assert first_step(order).scheduled_start == at(9)


@pytest.mark.parametrize(
    ("version", "start_of"),
    [
        (
            "2.3.1",
            lambda m: (m.extract_field("ORC", 1, 7, 1, 4), m.extract_field("OBR", 1, 27, 1, 4)),
        ),
        ("2.5.1", lambda m: (str(m.segment("TQ1")[7]),) * 2),
    ],
    ids=["ORM-ORC-7.4-and-OBR-27.4", "OMG-TQ1-7"],
)
def test_a_moved_step_reaches_the_his_as_sc_with_its_new_start(catalogue, version, start_of):
    port = free_port()
    destination(port, version=version)
    order = make_order(procedure_type=catalogue.cthead, station=catalogue.ct1, start=at(9))

    with HISReceiver(port) as his:
        services.step_schedule(
            step=first_step(order), start=at(16, 15), station=catalogue.ct1, actor=front_desk()
        )
        deliver_until(his, 1)

    [message] = his.received
    assert str(message.segment("MSH")[9]) == ("OMG^O19^OMG_O19" if version >= "2.5" else "ORM^O01")
    assert (str(message.segment("ORC")[1]), str(message.segment("ORC")[5])) == ("SC", "SC")
    assert str(message.segment("OBR")[18]) == order.accession_number
    assert start_of(message) == (ts(at(16, 15)),) * 2


def test_a_move_and_the_start_that_follows_reach_the_his_in_that_order(catalogue, settings):
    settings.RIS_OUTBOUND_BACKOFF_MS = 500
    port = free_port()
    destination(port, version="2.5.1")
    order = make_order(procedure_type=catalogue.cthead, station=catalogue.ct1, start=at(9))
    services.step_schedule(step=first_step(order), start=at(13), actor=front_desk())
    services.step_transition(step=first_step(order), to=StepStatus.STARTED, actor=Actor.ae("CT1"))
    move, start = OutboundJob.objects.order_by("pk")

    outbound_queue.drain()  # the HIS is down: the move waits for its retry...
    assert OutboundJob.objects.get(pk=move.pk).attempts >= 1
    outbound_queue.drain()  # ...and the start, already due, still waits behind it
    assert OutboundJob.objects.get(pk=start.pk).state == State.PENDING
    with HISReceiver(port) as his:
        deliver_until(his, 2)

    assert [str(m.segment("MSH")[10]) for m in his.received] == [f"RIS{move.pk}", f"RIS{start.pk}"]
    assert [str(m.segment("ORC")[5]) for m in his.received] == ["SC", "IP"]
    assert [str(m.segment("TQ1")[7]) for m in his.received] == [ts(at(13))] * 2


def test_a_new_time_requested_by_the_his_is_not_echoed_back(hl7_service, catalogue):
    destination(free_port())
    send(hl7_service.mllp_port, orm("NW-X", "PL-X", start="202612011000"))
    xo = orm("XO-X", "PL-X", order_control="XO", start="202612011430")
    ack = read_ack(send(hl7_service.mllp_port, xo))

    assert ack.code == "AA"
    step = first_step(Order.objects.get(placer_order_number="PL-X"))
    assert ts(step.scheduled_start) == "20261201143000"
    assert not OutboundJob.objects.exists(), list(OutboundJob.objects.values("kind", "payload"))


def test_messages_held_behind_a_failed_one_reach_the_his_in_order_after_a_retry(
    catalogue, settings
):
    """A HIS down: the move (SC) runs out of attempts and FAILS; the start (IP) and complete (CM)
    behind it wait instead of overtaking it; once the HIS is back and staff retry the failed
    one, the HIS gets SC, IP, CM in that order (never a stale message after a newer one)."""
    settings.RIS_OUTBOUND_BACKOFF_MS = 1
    settings.RIS_OUTBOUND_MAX_ATTEMPTS = 2
    port = free_port()
    destination(port, version="2.5.1")
    order = make_order(procedure_type=catalogue.cthead, station=catalogue.ct1, start=at(9))
    queued = OutboundJob.objects.count()
    services.step_schedule(step=first_step(order), start=at(13), actor=front_desk())
    move = OutboundJob.objects.order_by("pk")[queued]
    for _ in range(3):  # the HIS is down: the move is tried until it gives up
        OutboundJob.objects.filter(pk=move.pk).update(next_attempt_at=timezone.now())
        outbound_queue.drain()
    assert OutboundJob.objects.get(pk=move.pk).state == State.FAILED
    perform(order)  # IP and CM queue behind the failed move

    with HISReceiver(port) as his:
        outbound_queue.drain()
        time.sleep(0.5)
        assert his.received == []  # the HIS is back, but nothing overtakes the failed SC
        held = OutboundJob.objects.filter(pk__gt=move.pk)
        assert [job.state for job in held] == [State.PENDING, State.PENDING]
        assert outbound_queue.destination_status()[0].held == 2

        outbound_queue.retry([move.pk])
        deliver_until(his, 3)

    assert [str(m.segment("ORC")[5]) for m in his.received] == ["SC", "IP", "CM"]
    assert [str(m.segment("MSH")[10]) for m in his.received] == [
        f"RIS{pk}" for pk in OutboundJob.objects.order_by("pk").values_list("pk", flat=True)
    ][queued:]
