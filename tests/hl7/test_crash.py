"""Crash safety: whatever ris acknowledged with AA is in the database, even after kill -9."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from hl7.client import MLLPClient

from ris.models import InboundMessage
from tests.hl7.conftest import orm, process_tree, read_ack, receive_all, unframe
from worklist.models import Order

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_message_acknowledged_aa_survives_kill_9_of_ris_serve(new_ris_service, catalogue):
    service = new_ris_service("--only", "web,mllp")
    service.wait_healthy(timeout=180)
    acked: list[str] = []
    sending = threading.Event()

    def send_until_killed() -> None:
        try:
            with MLLPClient("127.0.0.1", service.mllp_port) as client:
                for i in range(10_000):
                    reply = receive_all(client, orm(f"CRASH-{i}", f"PL-CR{i}"))
                    if not reply:
                        return
                    if read_ack(unframe(reply)).code == "AA":
                        acked.append(f"CRASH-{i}")
                        sending.set()
        except (OSError, AssertionError):
            return  # the server died mid-exchange: that message had no AA

    sender = threading.Thread(target=send_until_killed)
    sender.start()
    assert sending.wait(60)
    deadline = time.monotonic() + 60
    while len(acked) < 5 and time.monotonic() < deadline:  # kill in the middle of the stream
        time.sleep(0.05)
    victims = [service.process.pid, *process_tree(service.process.pid)]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    sender.join(30)
    service.process.wait(10)

    assert len(acked) >= 5
    stored = set(
        InboundMessage.objects.filter(status="PROCESSED").values_list("control_id", flat=True)
    )
    assert set(acked) <= stored
    assert Order.objects.filter(placer_order_number__in=[
        f"PL-CR{c.split('-')[1]}" for c in acked
    ]).count() == len(acked)
