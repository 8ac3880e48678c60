"""The durable outbound queue: messages to peers (HIS, PACS) that must arrive once, in order.

A job is a row (``ris.models.OutboundJob``) written in the same transaction as the change it
reports, so a rollback takes the message with it and a commit cannot lose it. The scheduler's
``outbound`` job (``drain_due``, every ``RIS_OUTBOUND_POLL_SECONDS``) delivers due jobs; any number
of extra workers (``ris outbound --drain``) may run beside it: a job is claimed with a conditional
UPDATE (``state=PENDING -> IN_PROGRESS`` must change exactly one row), so no two workers send it.

Ordering: jobs with the same non-empty ``ordering_key`` are delivered strictly in id order and
never reordered. A key names one destination and one thing the messages are about; it is built by
``ordering_key`` and read by ``parse_ordering_key`` only (``"HIS1:order:42"``,
``"pacs:3:study:1.2.840..."``): a job is not claimable while an earlier job of
its key is pending, in progress (also while that one waits for its retry) or FAILED (rejected, or
out of attempts). A FAILED job holds its key until staff either retry it (it then goes first, its
successors after it) or mark it SUPERSEDED (``supersede``: a later message of the same order says
what is true now; audited with the reason, never sent, releases the key). Nothing is dropped
without a person deciding it: a HIS never gets a stale IP after the CM that followed it.

Health (``destination_status``, ``queue_summary``): per destination the queue depth, the age of
the oldest waiting job, FAILED jobs and the jobs they hold back, and since when its deliveries
fail (``ris.models.OutboundPeer``, written only on a change between failing and working, not per
job). A destination with a FAILED job, or failing for ``RIS_OUTBOUND_ALERT_AFTER_SECONDS``, is in
alert: the web pages show admins a banner, and ``check_alerts`` (run after each scheduler pass)
logs it at ERROR once per incident, with one INFO line when it is over.

Delivery is at least once: a worker killed after the peer accepted and before the DONE update
sends again once the lease (``RIS_OUTBOUND_LEASE_SECONDS``) ran out; senders give each message a
stable ID derived from the job (HL7: MSH-10 ``RIS<job id>``) so peers can drop the repeat.

Adding a job kind (the PACS forwarder's ``dicom.store``, MPPS forwarding, ...):

1. Write a sender ``def send(job: OutboundJob) -> str``. Return a short result text (stored on
   the job) once the peer accepted. Raise ``RetryLater("why")`` when it may work later (peer down,
   busy, timeout: retried with exponential backoff, capped, up to ``max_attempts``) or
   ``Rejected("why")`` when the peer refused it for good (FAILED at once). Any other exception
   counts as ``RetryLater``. Senders run outside any transaction; they should not write the job.
2. Register it by kind in settings: ``RIS_OUTBOUND_SENDERS["dicom.store"] = "pacs.forward:send"``
   (or call ``outbound_queue.register("dicom.store", send)`` from an ``AppConfig.ready``).
3. Enqueue inside the transaction of the change:
   ``outbound_queue.enqueue(kind="dicom.store", destination="PACS1", payload={...},
   ordering_key=ordering_key("pacs:3", "study", uid))``. Payloads are JSON: put ids and the
   facts as they were at that moment, not model instances.

Operators see FAILED jobs (web outbound page, admin, ``ris outbound --list``) and retry them
(``--retry``) or supersede them (``--supersede ID --reason TEXT``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q
from django.utils import timezone

from ris.models import OutboundJob, OutboundPeer
from worklist import audit

logger = logging.getLogger("ris.outbound_queue")

State = OutboundJob.State
#: States in which a job holds its ordering key: the later jobs of the key wait behind it.
HOLDING_STATES = (State.PENDING, State.IN_PROGRESS, State.FAILED)
#: States still to be looked at (not delivered, not superseded).
OPEN_STATES = HOLDING_STATES
Sender = Callable[[OutboundJob], str | None]


class RetryLater(Exception):
    """The peer could not take the job now (down, busy, timeout): try again after a backoff."""


class Rejected(Exception):
    """The peer refused the job (e.g. HL7 AE): resending it unchanged would not help."""


_registry: dict[str, Sender] = {}


def register(kind: str, sender: Sender) -> None:
    _registry[kind] = sender


def sender_for(kind: str) -> Sender:
    if kind not in _registry:
        path = settings.RIS_OUTBOUND_SENDERS.get(kind)
        if path is None:
            raise Rejected(f"no sender is registered for job kind {kind!r}")
        module_name, func_name = path.split(":")
        _registry[kind] = getattr(importlib.import_module(module_name), func_name)
    return _registry[kind]


class OrderingKey(NamedTuple):
    destination: str
    subject: str
    ident: str


def ordering_key(destination: str, subject: str, ident: object) -> str:
    """The key that keeps one destination's messages about one thing in order.

    ``destination`` may itself contain ``:`` (``"pacs:3"``); ``subject`` and ``ident`` may not,
    so the key parses from the right.
    """
    ident = str(ident)
    if ":" in subject or ":" in ident:
        raise ValueError(f"ordering key parts may not contain ':' ({subject!r}, {ident!r})")
    return f"{destination}:{subject}:{ident}"


def parse_ordering_key(key: str) -> OrderingKey:
    """The parts of a key built by ``ordering_key``; raise ValueError for any other string."""
    destination, subject, ident = key.rsplit(":", 2) if key.count(":") >= 2 else ("", "", "")
    if not (destination and subject and ident):
        raise ValueError(f"not an ordering key: {key!r}")
    return OrderingKey(destination, subject, ident)


def jobs_about(subject: str, ident: object):
    """Every job, for any destination, whose key is about ``subject`` ``ident`` (an order's
    HIS messages for its page)."""
    return OutboundJob.objects.filter(ordering_key__endswith=f":{subject}:{ident}")


def enqueue(
    *,
    kind: str,
    payload: dict,
    destination: str = "",
    ordering_key: str = "",
    max_attempts: int | None = None,
) -> OutboundJob:
    """Queue a job; call it inside the transaction of the change it reports."""
    return OutboundJob.objects.create(
        kind=kind,
        destination=destination,
        payload=payload,
        ordering_key=ordering_key,
        max_attempts=max_attempts or settings.RIS_OUTBOUND_MAX_ATTEMPTS,
        next_attempt_at=timezone.now(),
    )


def backoff(attempts: int) -> dt.timedelta:
    """Delay before attempt ``attempts + 1``: base * 2^(attempts-1), capped."""
    base = settings.RIS_OUTBOUND_BACKOFF_MS
    delay_ms = min(base * (2 ** max(attempts - 1, 0)), settings.RIS_OUTBOUND_BACKOFF_MAX_MS)
    return dt.timedelta(milliseconds=delay_ms)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claimable(now: dt.datetime, skip_destinations: Iterable[tuple[str, str]] = ()):
    earlier_open = OutboundJob.objects.filter(
        ordering_key=OuterRef("ordering_key"),
        id__lt=OuterRef("id"),
        state__in=HOLDING_STATES,
    )
    query = (
        OutboundJob.objects.filter(state=State.PENDING, next_attempt_at__lte=now)
        .filter(Q(ordering_key="") | ~Exists(earlier_open))
        .order_by("id")
    )
    for kind, destination in skip_destinations:
        query = query.exclude(kind=kind, destination=destination)
    return query


def claim_next(
    worker: str, skip_destinations: Iterable[tuple[str, str]] = ()
) -> OutboundJob | None:
    """Claim the oldest due, unblocked job, or None. Safe with any number of workers."""
    now = timezone.now()
    for job_id in _claimable(now, skip_destinations).values_list("id", flat=True)[:20]:
        claimed = OutboundJob.objects.filter(id=job_id, state=State.PENDING).update(
            state=State.IN_PROGRESS,
            claimed_at=now,
            claimed_by=worker[:100],
            attempts=F("attempts") + 1,
        )
        if claimed == 1:
            return OutboundJob.objects.get(id=job_id)
    return None


def deliver(job: OutboundJob) -> str:
    """Run the sender of one claimed job and record the outcome. Returns the new state."""
    try:
        result = sender_for(job.kind)(job) or ""
    except Rejected as exc:
        _finish(job, State.FAILED, error=str(exc))
        logger.warning("outbound %s #%s rejected: %s", job.kind, job.pk, exc)
        return State.FAILED
    except Exception as exc:  # noqa: BLE001 - any failure of a peer is retried
        error = str(exc) or exc.__class__.__name__
        _peer_failing(job.destination, error)
        if job.attempts >= job.max_attempts:
            _finish(job, State.FAILED, error=f"gave up after {job.attempts} attempts: {error}")
            logger.warning("outbound %s #%s failed for good: %s", job.kind, job.pk, error)
            return State.FAILED
        OutboundJob.objects.filter(id=job.pk, state=State.IN_PROGRESS).update(
            state=State.PENDING,
            next_attempt_at=timezone.now() + backoff(job.attempts),
            last_error=error[:2000],
            claimed_by="",
        )
        logger.info("outbound %s #%s attempt %s: %s", job.kind, job.pk, job.attempts, error)
        return State.PENDING
    _finish(job, State.DONE, result=result)
    _peer_working(job.destination)
    return State.DONE


def _finish(job: OutboundJob, state: str, *, result: str = "", error: str = "") -> None:
    changes = {"state": state, "finished_at": timezone.now(), "result": result[:2000]}
    if error:
        changes["last_error"] = error[:2000]
    OutboundJob.objects.filter(id=job.pk, state=State.IN_PROGRESS).update(**changes)


# --- destination health -----------------------------------------------------------------------

#: Destinations this process last saw failing; refreshed at the start of each ``drain``, so a
#: success costs a write only when it ends a failure (not one UPDATE per delivered job).
_failing: set[str] = set()


def _peer_failing(destination: str, error: str) -> None:
    """Record a failed attempt: ``failing_since`` keeps the first one of this failure."""
    OutboundPeer.objects.get_or_create(destination=destination)
    OutboundPeer.objects.filter(destination=destination).update(last_error=error[:2000])
    OutboundPeer.objects.filter(destination=destination, failing_since__isnull=True).update(
        failing_since=timezone.now()
    )
    _failing.add(destination)


def _peer_working(destination: str) -> None:
    if destination in _failing:
        OutboundPeer.objects.filter(destination=destination).update(
            failing_since=None, last_success_at=timezone.now()
        )
        _failing.discard(destination)


def _refresh_failing() -> None:
    _failing.clear()
    _failing.update(
        OutboundPeer.objects.filter(failing_since__isnull=False).values_list(
            "destination", flat=True
        )
    )


@dataclass
class DestinationStatus:
    """What the dashboard, the outbound page and ``/healthz`` say about one destination."""

    destination: str
    waiting: int = 0  # pending or in progress
    failed: int = 0
    held: int = 0  # waiting behind a FAILED job of their order
    oldest_waiting_seconds: float | None = None
    failing_since: dt.datetime | None = None
    last_error: str = ""
    alerted: bool = False
    alert_after: float = 600.0

    @property
    def down_seconds(self) -> float | None:
        if self.failing_since is None:
            return None
        return max((timezone.now() - self.failing_since).total_seconds(), 0.0)

    @property
    def failing(self) -> bool:
        """Deliveries to it fail now, or a job gave up: ``/healthz`` says "degraded"."""
        return self.failed > 0 or self.failing_since is not None

    @property
    def alert(self) -> bool:
        """A FAILED job (it holds later messages back), or down longer than the setting."""
        down = self.down_seconds
        return self.failed > 0 or (down is not None and down >= self.alert_after)

    def as_json(self) -> dict:
        down = self.down_seconds
        return {
            "destination": self.destination,
            "waiting": self.waiting,
            "failed": self.failed,
            "held_by_failed": self.held,
            "oldest_waiting_seconds": _round(self.oldest_waiting_seconds),
            "failing": self.failing,
            "down_seconds": _round(down),
            "alert": self.alert,
            "last_error": self.last_error[:200] if self.failing else "",
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def destination_status() -> list[DestinationStatus]:
    """Every destination with open jobs or a failure on record, by name. Two queries."""
    now = timezone.now()
    alert_after = float(settings.RIS_OUTBOUND_ALERT_AFTER_SECONDS)
    earlier_failed = OutboundJob.objects.filter(
        ordering_key=OuterRef("ordering_key"), id__lt=OuterRef("id"), state=State.FAILED
    )
    waiting_states = [State.PENDING, State.IN_PROGRESS]
    rows = (
        OutboundJob.objects.filter(state__in=OPEN_STATES)
        .values("destination")
        .annotate(
            waiting=Count("id", filter=Q(state__in=waiting_states)),
            failed=Count("id", filter=Q(state=State.FAILED)),
            held=Count(
                "id",
                filter=Q(state=State.PENDING) & ~Q(ordering_key="") & Q(Exists(earlier_failed)),
            ),
            oldest=Min("created_at", filter=Q(state__in=waiting_states)),
        )
        .order_by()
    )
    found: dict[str, DestinationStatus] = {}
    for row in rows:
        oldest = row["oldest"]
        found[row["destination"]] = DestinationStatus(
            destination=row["destination"],
            waiting=row["waiting"],
            failed=row["failed"],
            held=row["held"],
            oldest_waiting_seconds=(now - oldest).total_seconds() if oldest else None,
            alert_after=alert_after,
        )
    for peer in OutboundPeer.objects.filter(
        Q(failing_since__isnull=False) | Q(alerted_at__isnull=False)
    ):
        status = found.setdefault(
            peer.destination, DestinationStatus(peer.destination, alert_after=alert_after)
        )
        status.failing_since = peer.failing_since
        status.last_error = peer.last_error
        status.alerted = peer.alerted_at is not None
    for status in found.values():
        if status.failed and not status.last_error:
            status.last_error = (
                OutboundJob.objects.filter(destination=status.destination, state=State.FAILED)
                .values_list("last_error", flat=True)
                .last()
                or ""
            )
    return sorted(found.values(), key=lambda s: s.destination)


def queue_summary(statuses: list[DestinationStatus] | None = None) -> dict:
    """The queue as ``/healthz`` reports it: depth, oldest waiting age, per destination."""
    statuses = destination_status() if statuses is None else statuses
    ages = [s.oldest_waiting_seconds for s in statuses if s.oldest_waiting_seconds is not None]
    return {
        "ok": True,  # the queue works; a failing peer makes the service degraded, not down
        "degraded": any(s.failing for s in statuses),
        "depth": sum(s.waiting for s in statuses),
        "oldest_waiting_seconds": _round(max(ages)) if ages else None,
        "failed": sum(s.failed for s in statuses),
        "alerts": [s.destination for s in statuses if s.alert],
        "destinations": [s.as_json() for s in statuses],
    }


def alerts() -> list[DestinationStatus]:
    """Destinations in alert, for the admins' banner."""
    return [s for s in destination_status() if s.alert]


def check_alerts() -> list[str]:
    """Log each new alert at ERROR once and each alert that ended at INFO; returns the new ones.

    Claimed with a conditional UPDATE on ``alerted_at``, so with several workers one logs it.
    """
    raised = []
    for status in destination_status():
        if status.alert and not status.alerted:
            OutboundPeer.objects.get_or_create(destination=status.destination)
            claimed = OutboundPeer.objects.filter(
                destination=status.destination, alerted_at__isnull=True
            ).update(alerted_at=timezone.now())
            if claimed:
                down = status.down_seconds
                logger.error(
                    "outbound destination %s needs attention: %s failed job(s) holding %s later "
                    "message(s) back, %s waiting%s; last error: %s",
                    status.destination, status.failed, status.held, status.waiting,
                    f", failing for {down:.0f} s" if down is not None else "",
                    status.last_error[:300] or "-",
                )
                raised.append(status.destination)
        elif status.alerted and not status.alert:
            cleared = OutboundPeer.objects.filter(
                destination=status.destination, alerted_at__isnull=False
            ).update(alerted_at=None)
            if cleared:
                logger.info("outbound destination %s is delivering again", status.destination)
    return raised


def release_stale(lease_seconds: int | None = None) -> int:
    """Give back jobs whose worker died mid-delivery (claimed longer ago than the lease)."""
    lease = dt.timedelta(seconds=lease_seconds or settings.RIS_OUTBOUND_LEASE_SECONDS)
    return OutboundJob.objects.filter(
        state=State.IN_PROGRESS, claimed_at__lt=timezone.now() - lease
    ).update(state=State.PENDING, claimed_by="", next_attempt_at=timezone.now())


def drain(
    *, worker: str | None = None, max_jobs: int | None = None, time_budget: float | None = None
) -> int:
    """Deliver due jobs until none is left, ``max_jobs`` were handled or the budget is spent.

    A destination that failed transiently is skipped for the rest of this run, so a dead peer
    costs one connection attempt per run rather than one per queued job.
    """
    worker = worker or worker_name()
    started = time.monotonic()
    down: set[tuple[str, str]] = set()
    handled = 0
    release_stale()
    _refresh_failing()
    while max_jobs is None or handled < max_jobs:
        if time_budget is not None and time.monotonic() - started > time_budget:
            break
        job = claim_next(worker, down)
        if job is None:
            break
        handled += 1
        if deliver(job) == State.PENDING:
            down.add((job.kind, job.destination))
    return handled


def drain_due() -> None:
    """The scheduler's periodic job (``RIS_SCHEDULER_JOBS``): deliver, then raise alerts."""
    drain(time_budget=30.0)
    check_alerts()


@transaction.atomic
def retry(job_ids: Iterable[int] | None = None) -> int:
    """Put FAILED jobs (all, or these) back in the queue with fresh attempts.

    A retried job still comes before the later jobs of its key (they waited behind it).
    """
    jobs = OutboundJob.objects.filter(state=State.FAILED)
    if job_ids is not None:
        jobs = jobs.filter(id__in=list(job_ids))
    return jobs.update(
        state=State.PENDING, attempts=0, next_attempt_at=timezone.now(), finished_at=None
    )


#: States a job can be superseded from: not yet delivered, and not being delivered right now.
SUPERSEDABLE_STATES = (State.PENDING, State.FAILED)


@transaction.atomic
def supersede(job_ids: Iterable[int], *, actor: audit.Actor, reason: str) -> int:
    """Mark FAILED or PENDING jobs SUPERSEDED: never sent, their ordering key released.

    For a message that a later one of the same order replaces (the HIS needs the CM, not the IP
    it missed). Each job gets an audit event with who and why; returns the number superseded.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("say why the job is superseded")
    count = 0
    for job in OutboundJob.objects.filter(
        id__in=list(job_ids), state__in=SUPERSEDABLE_STATES
    ).order_by("id"):
        changed = OutboundJob.objects.filter(id=job.pk, state=job.state).update(
            state=State.SUPERSEDED,
            finished_at=timezone.now(),
            result=f"superseded by {actor.name}: {reason}"[:2000],
            claimed_by="",
        )
        if changed:
            count += 1
            audit.record(
                actor,
                "outbound.supersede",
                job,
                before={"state": job.state},
                after={"state": State.SUPERSEDED},
                detail=reason[:2000],
            )
    return count


def successor_of(job: OutboundJob) -> OutboundJob | None:
    """The next job of the same ordering key (the message that may supersede ``job``)."""
    if not job.ordering_key:
        return None
    return (
        OutboundJob.objects.filter(ordering_key=job.ordering_key, id__gt=job.pk)
        .order_by("id")
        .first()
    )
