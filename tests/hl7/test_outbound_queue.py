"""The durable outbound queue (ris.outbound_queue): claiming, ordering, backoff, failure, retry.

The senders here are stand-ins registered for made-up job kinds: the queue's rules do not depend
on what a job sends, and a fake peer lets each test decide success or failure. The real HL7
sender against a real MLLP receiver is tested in test_order_status.py.
"""

from __future__ import annotations

import datetime as dt

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


# --- ordering keys: one builder, one parser ----------------------------------------------------


def test_an_ordering_key_parses_back_into_its_parts_even_when_the_destination_has_colons():
    key = outbound_queue.ordering_key("pacs:3", "study", "1.2.840.113619.2.1")
    assert key == "pacs:3:study:1.2.840.113619.2.1"
    assert outbound_queue.parse_ordering_key(key) == ("pacs:3", "study", "1.2.840.113619.2.1")


def test_an_ordering_key_part_with_a_colon_is_refused():
    with pytest.raises(ValueError):
        outbound_queue.ordering_key("HIS", "order", "4:2")


@pytest.mark.parametrize("text", ["", "order:42", "::", "HIS::42"])
def test_a_string_that_is_no_ordering_key_does_not_parse(text):
    with pytest.raises(ValueError):
        outbound_queue.parse_ordering_key(text)


@pytest.mark.django_db
def test_jobs_about_an_order_are_found_for_every_destination_and_no_other_order():
    for destination, order_id in (("HIS1", 42), ("HIS2", 42), ("HIS1", 142), ("HIS1", 4)):
        outbound_queue.enqueue(
            kind="test.fake",
            destination=destination,
            payload={},
            ordering_key=outbound_queue.ordering_key(destination, "order", order_id),
        )
    found = outbound_queue.jobs_about("order", 42)
    assert sorted(job.destination for job in found) == ["HIS1", "HIS2"]


# --- a FAILED job holds its key; superseding; health and alerts ------------------------------


def fail_for_good(queued: OutboundJob) -> None:
    """Drain until ``queued`` is FAILED (its peer keeps failing), skipping the backoff waits."""
    for _ in range(queued.max_attempts):
        OutboundJob.objects.filter(pk=queued.pk).update(next_attempt_at=timezone.now())
        outbound_queue.drain()
    queued.refresh_from_db()
    assert queued.state == State.FAILED


def test_a_failed_job_holds_its_ordering_key_and_the_later_jobs_wait(peer):
    peer.outcome = TimeoutError("no ACK")
    first = job(1, "HIS:order:1", max_attempts=2)
    second, third = job(2, "HIS:order:1"), job(3, "HIS:order:1")
    fail_for_good(first)

    peer.outcome = None
    peer.received.clear()
    outbound_queue.drain()
    assert peer.received == []  # nothing overtakes the failed job
    assert {OutboundJob.objects.get(pk=j.pk).state for j in (second, third)} == {State.PENDING}
    assert OutboundJob.objects.get(pk=second.pk).attempts == 0


def test_a_retried_failed_job_is_delivered_before_the_jobs_that_waited_for_it(peer):
    peer.outcome = TimeoutError("no ACK")
    first = job(1, "HIS:order:1", max_attempts=1)
    job(2, "HIS:order:1")
    job(3, "HIS:order:1")
    fail_for_good(first)

    peer.outcome = None
    peer.received.clear()
    outbound_queue.retry([first.pk])
    outbound_queue.drain()
    assert peer.received == [1, 2, 3]


def test_other_ordering_keys_are_not_held_back_by_a_failed_job(peer):
    peer.outcome = outbound_queue.Rejected("AE")
    job(1, "HIS:order:1")
    outbound_queue.drain()
    peer.outcome = None
    job(2, "HIS:order:2")
    job(3)
    outbound_queue.drain()
    assert peer.received == [1, 2, 3]


def test_superseding_a_failed_job_releases_its_key_and_is_audited(peer):
    from worklist.audit import Actor
    from worklist.models import AuditEvent

    peer.outcome = outbound_queue.Rejected("AE: stale")
    first = job(1, "HIS:order:1")
    job(2, "HIS:order:1")
    outbound_queue.drain()
    peer.outcome = None

    count = outbound_queue.supersede(
        [first.pk], actor=Actor.system("nurse"), reason="the CM that follows replaces it"
    )
    outbound_queue.drain()

    assert count == 1
    first.refresh_from_db()
    assert first.state == State.SUPERSEDED
    assert peer.received == [1, 2]  # 1 was tried once (refused), never again; 2 went out
    event = AuditEvent.objects.get(object_type="ris.OutboundJob", object_id=str(first.pk))
    assert (event.action, event.actor, event.detail) == (
        "outbound.supersede", "nurse", "the CM that follows replaces it"
    )
    assert (event.before, event.after) == ({"state": "FAILED"}, {"state": "SUPERSEDED"})


def test_superseding_needs_a_reason_and_leaves_delivered_jobs_alone(peer):
    from worklist.audit import Actor

    delivered = job(1)
    outbound_queue.drain()
    with pytest.raises(ValueError):
        outbound_queue.supersede([delivered.pk], actor=Actor.system(), reason=" ")
    assert outbound_queue.supersede([delivered.pk], actor=Actor.system(), reason="x") == 0
    assert OutboundJob.objects.get(pk=delivered.pk).state == State.DONE


def test_the_outbound_command_supersedes_with_a_reason(peer):
    from io import StringIO

    from django.core.management import CommandError, call_command

    peer.outcome = outbound_queue.Rejected("AE")
    queued = job(1, "HIS:order:1")
    outbound_queue.drain()
    with pytest.raises(CommandError):
        call_command("outbound", "--supersede", str(queued.pk), stdout=StringIO())
    out = StringIO()
    call_command("outbound", "--supersede", str(queued.pk), "--reason", "sent by hand", stdout=out)
    assert "1 job(s) superseded" in out.getvalue()
    assert OutboundJob.objects.get(pk=queued.pk).state == State.SUPERSEDED


def test_destination_status_counts_waiting_failed_held_back_and_the_oldest_age(peer):
    peer.outcome = outbound_queue.Rejected("AE: unknown order")
    failed = job(1, "HIS:order:1", destination="HIS")
    outbound_queue.drain()
    held = job(2, "HIS:order:1", destination="HIS")
    job(3, "HIS:order:2", destination="HIS")
    job(4, destination="PACS")
    OutboundJob.objects.filter(pk=held.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )

    his, pacs = outbound_queue.destination_status()

    assert (his.destination, his.waiting, his.failed, his.held) == ("HIS", 2, 1, 1)
    assert 299 < his.oldest_waiting_seconds < 330
    assert his.failing and his.alert and his.last_error == "AE: unknown order"
    assert (pacs.destination, pacs.waiting, pacs.failed, pacs.failing) == ("PACS", 1, 0, False)
    summary = outbound_queue.queue_summary()
    assert (summary["depth"], summary["failed"], summary["degraded"]) == (3, 1, True)
    assert summary["alerts"] == ["HIS"]
    assert failed.pk


def test_a_destination_down_longer_than_the_setting_is_logged_at_error_once(
    peer, settings, caplog
):
    settings.RIS_OUTBOUND_ALERT_AFTER_SECONDS = 600
    peer.outcome = ConnectionRefusedError("down")
    queued = job(1, destination="HIS")
    outbound_queue.drain()
    assert outbound_queue.check_alerts() == []  # failing, but not for long yet
    [status] = outbound_queue.destination_status()
    assert status.failing and not status.alert

    from ris.models import OutboundPeer

    OutboundPeer.objects.filter(destination="HIS").update(
        failing_since=timezone.now() - dt.timedelta(minutes=11)
    )
    with caplog.at_level("INFO", logger="ris.outbound_queue"):
        for _ in range(3):  # three more failed attempts, three scheduler passes
            OutboundJob.objects.filter(pk=queued.pk).update(next_attempt_at=timezone.now())
            outbound_queue.drain_due()
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1
        assert "HIS" in errors[0].getMessage() and "down" in errors[0].getMessage()

        peer.outcome = None
        OutboundJob.objects.filter(pk=queued.pk).update(next_attempt_at=timezone.now())
        outbound_queue.drain_due()
    assert "HIS is delivering again" in caplog.text
    assert outbound_queue.destination_status() == []
    assert OutboundPeer.objects.get(destination="HIS").alerted_at is None


def test_a_failed_job_raises_the_alert_at_once(peer, caplog):
    peer.outcome = outbound_queue.Rejected("AE")
    job(1, destination="HIS")
    with caplog.at_level("ERROR", logger="ris.outbound_queue"):
        outbound_queue.drain_due()
        outbound_queue.drain_due()
    assert [r.levelname for r in caplog.records].count("ERROR") == 1
    assert [s.destination for s in outbound_queue.alerts()] == ["HIS"]


def test_healthz_is_degraded_with_200_while_a_destination_fails(peer, client, monkeypatch):
    monkeypatch.setenv("RIS_LISTENERS", "")  # only the database and the queue are checked
    assert client.get("/healthz").json()["status"] == "ok"
    peer.outcome = ConnectionRefusedError("down")
    job(1, destination="HIS")
    outbound_queue.drain()

    response = client.get("/healthz")

    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "degraded" and report["ok"] is True
    [his] = report["outbound"]["destinations"]
    assert (his["destination"], his["waiting"], his["failing"]) == ("HIS", 1, True)
    assert report["outbound"]["depth"] == 1
    assert report["outbound"]["oldest_waiting_seconds"] is not None
