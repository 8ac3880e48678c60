"""The durable outbound queue (ris.outbound_queue): claiming, ordering, backoff, failure, retry.

The senders here are stand-ins registered for made-up job kinds: the queue's rules do not depend
on what a job sends, and a fake peer lets each test decide success or failure. The real HL7
sender against a real MLLP receiver is tested in test_order_status.py.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess

import pytest
from django.utils import timezone

from ris import outbound_queue
from ris.models import OutboundJob

State = OutboundJob.State
pytestmark = pytest.mark.django_db


class FakePeer:
    def __init__(self, outcome: Exception | None = None) -> None:
        self.outcome = outcome
        self.received: list[int] = []

    def __call__(self, job: OutboundJob) -> str:
        self.received.append(job.payload["n"])
        if self.outcome is not None:
            raise self.outcome
        return f"ok {job.payload['n']}"


@pytest.fixture
def peer():
    fake = FakePeer()
    outbound_queue.register("test.fake", fake)
    yield fake
    outbound_queue._registry.pop("test.fake", None)


def job(n: int, key: str = "", destination: str = "PEER", **extra) -> OutboundJob:
    return outbound_queue.enqueue(
        kind="test.fake", destination=destination, payload={"n": n}, ordering_key=key, **extra
    )


def test_a_due_job_is_delivered_once_and_marked_done(peer):
    queued = job(1)
    assert outbound_queue.drain() == 1
    assert outbound_queue.drain() == 0

    queued.refresh_from_db()
    assert queued.state == State.DONE
    assert queued.result == "ok 1"
    assert queued.attempts == 1
    assert peer.received == [1]


def test_a_transient_failure_is_retried_after_an_exponential_backoff(peer, settings):
    settings.RIS_OUTBOUND_BACKOFF_MS = 1000
    peer.outcome = ConnectionRefusedError("peer down")
    queued = job(1)
    before = timezone.now()
    outbound_queue.drain()

    queued.refresh_from_db()
    assert queued.state == State.PENDING
    assert queued.attempts == 1
    assert queued.last_error == "peer down"
    assert dt.timedelta(seconds=0.9) < queued.next_attempt_at - before < dt.timedelta(seconds=2)
    assert outbound_queue.drain() == 0  # not due yet


def test_backoff_doubles_and_is_capped(settings):
    settings.RIS_OUTBOUND_BACKOFF_MS = 1000
    settings.RIS_OUTBOUND_BACKOFF_MAX_MS = 5000
    delays = [outbound_queue.backoff(n).total_seconds() for n in range(1, 6)]
    assert delays == [1, 2, 4, 5, 5]


def test_a_job_out_of_attempts_fails_and_can_be_retried(peer):
    peer.outcome = TimeoutError("no ACK")
    queued = job(1, max_attempts=2)
    outbound_queue.drain()
    OutboundJob.objects.filter(pk=queued.pk).update(next_attempt_at=timezone.now())
    outbound_queue.drain()

    queued.refresh_from_db()
    assert queued.state == State.FAILED
    assert "gave up after 2 attempts" in queued.last_error

    peer.outcome = None
    assert outbound_queue.retry([queued.pk]) == 1
    outbound_queue.drain()
    queued.refresh_from_db()
    assert queued.state == State.DONE


def test_a_rejected_job_fails_at_once(peer):
    peer.outcome = outbound_queue.Rejected("AE: unknown order")
    queued = job(1)
    outbound_queue.drain()

    queued.refresh_from_db()
    assert queued.state == State.FAILED
    assert queued.attempts == 1
    assert queued.last_error == "AE: unknown order"


def test_jobs_with_one_ordering_key_wait_for_the_earlier_one(peer):
    peer.outcome = ConnectionResetError("down")
    first, second = job(1, "order:1", "PEER-A"), job(2, "order:1", "PEER-A")
    job(3, "order:2", "PEER-B")
    outbound_queue.drain()
    assert peer.received == [1, 3]  # 2 waits behind 1; order:2 is not held back by order:1

    peer.outcome = None
    peer.received.clear()
    OutboundJob.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())
    outbound_queue.drain()
    assert peer.received == [1, 2]
    second.refresh_from_db()
    assert second.state == State.DONE


def test_a_destination_that_failed_is_not_tried_again_in_the_same_pass(peer):
    peer.outcome = ConnectionRefusedError("down")
    job(1, "order:1")
    job(2, "order:2")
    outbound_queue.drain()
    assert peer.received == [1]


def test_a_claimed_job_is_not_claimed_by_another_worker(peer):
    queued = job(1)
    claimed = outbound_queue.claim_next("worker-a")
    assert claimed is not None and claimed.pk == queued.pk
    assert outbound_queue.claim_next("worker-b") is None
    assert OutboundJob.objects.get(pk=queued.pk).claimed_by == "worker-a"


def test_a_job_of_a_dead_worker_is_taken_back_after_the_lease(peer):
    queued = job(1)
    outbound_queue.claim_next("worker-that-dies")
    OutboundJob.objects.filter(pk=queued.pk).update(
        claimed_at=timezone.now() - dt.timedelta(hours=1)
    )
    outbound_queue.drain()

    queued.refresh_from_db()
    assert queued.state == State.DONE
    assert queued.attempts == 2


def _claimed_by(worker: str, at: dt.datetime | None = None) -> OutboundJob:
    queued = job(1)
    outbound_queue.claim_next(worker)
    OutboundJob.objects.filter(pk=queued.pk).update(claimed_at=at or timezone.now())
    return queued


def test_a_job_held_by_a_dead_process_of_this_host_is_taken_back_at_once(peer):
    exited = subprocess.Popen(["true"])  # noqa: S607 - a process that has exited and been reaped
    exited.wait()
    dead_pid = exited.pid
    queued = _claimed_by(f"{socket.gethostname()}:{dead_pid}")
    assert outbound_queue.drain() == 1  # well inside the 300 s lease
    queued.refresh_from_db()
    assert queued.state == State.DONE


def test_a_job_held_under_this_process_name_by_a_previous_run_is_taken_back(peer):
    before_start = outbound_queue._STARTED - dt.timedelta(seconds=1)
    queued = _claimed_by(outbound_queue.worker_name(), at=before_start)
    assert outbound_queue.drain() == 1
    queued.refresh_from_db()
    assert queued.state == State.DONE


def test_a_job_held_by_a_live_process_of_this_host_waits_for_its_lease(peer):
    with subprocess.Popen(["sleep", "30"]) as alive:  # noqa: S607
        try:
            queued = _claimed_by(f"{socket.gethostname()}:{alive.pid}")
            assert outbound_queue.drain() == 0
            assert OutboundJob.objects.get(pk=queued.pk).state == State.IN_PROGRESS
        finally:
            alive.kill()


def test_a_job_held_on_another_host_waits_for_its_lease(peer):
    queued = _claimed_by("some-other-host:1")
    assert outbound_queue.drain() == 0
    assert OutboundJob.objects.get(pk=queued.pk).state == State.IN_PROGRESS


def test_a_job_of_an_unregistered_kind_fails_with_a_clear_error():
    queued = outbound_queue.enqueue(kind="nobody.sends.this", payload={})
    outbound_queue.drain()
    queued.refresh_from_db()
    assert queued.state == State.FAILED
    assert "no sender is registered" in queued.last_error


def test_enqueue_inside_a_rolled_back_transaction_leaves_no_job(peer):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        job(1)
        raise RuntimeError("the change failed")
    assert not OutboundJob.objects.exists()


def test_the_outbound_command_lists_and_retries_failed_jobs(peer):
    from io import StringIO

    from django.core.management import call_command

    peer.outcome = outbound_queue.Rejected("AE: no such order")
    queued = job(1)
    outbound_queue.drain()
    listing = StringIO()
    call_command("outbound", "--list", stdout=listing)
    assert f"{queued.pk}" in listing.getvalue() and "AE: no such order" in listing.getvalue()

    peer.outcome = None
    call_command("outbound", "--retry", stdout=StringIO())
    call_command("outbound", "--drain", "--once", stdout=StringIO())
    queued.refresh_from_db()
    assert queued.state == State.DONE
