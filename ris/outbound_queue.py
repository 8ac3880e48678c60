"""The durable outbound queue: messages to peers (HIS, PACS) that must arrive once, in order.

A job is a row (``ris.models.OutboundJob``) written in the same transaction as the change it
reports, so a rollback takes the message with it and a commit cannot lose it. The scheduler's
``outbound`` job (``drain_due``, every ``RIS_OUTBOUND_POLL_SECONDS``) delivers due jobs; any number
of extra workers (``ris outbound --drain``) may run beside it: a job is claimed with a conditional
UPDATE (``state=PENDING -> IN_PROGRESS`` must change exactly one row), so no two workers send it.

Ordering: jobs with the same non-empty ``ordering_key`` (``"order:42"``, ``"study:<uid>"``) are
delivered strictly in id order: a job is not claimable while an earlier job of its key is pending
or in progress (also while that one waits for its retry). A job that FAILED (rejected, or out of
attempts) no longer holds its key back; retrying it later delivers it after its successors.

Delivery is at least once: a worker killed after the peer accepted and before the DONE update
sends again once the lease (``RIS_OUTBOUND_LEASE_SECONDS``) ran out, or at once when a worker of
the same host finds that the process that claimed it is gone (``release_orphaned``: a restarted
ris takes back what its previous run held; the lease is for workers on other hosts); senders
give each message a stable ID derived from the job (HL7: MSH-10 ``RIS<job id>``) so peers can
drop the repeat.

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
   ordering_key=f"study:{uid}")``. Payloads are JSON: put ids and the facts as they were at that
   moment, not model instances.

Operators see FAILED jobs (admin, ``ris outbound --list``) and retry them (``--retry``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from ris.models import OutboundJob
from worklist.audit import Actor, access_event, record_all

logger = logging.getLogger("ris.outbound_queue")

State = OutboundJob.State
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


#: When this process started: a claim under our own name from before then is a previous run's
#: (a container restarted with the same PID).
_STARTED = timezone.now()


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, someone else's
        return True
    return True


def release_orphaned() -> int:
    """Give back at once the jobs claimed on this host by a process that no longer runs.

    The claim names its worker ``host:pid``; on the claiming host the question "is that worker
    alive" has an exact answer, so the lease (meant for workers that may be alive elsewhere) need
    not be waited out after a crash or restart.
    """
    host = socket.gethostname()
    me = os.getpid()
    orphaned = []
    claims = OutboundJob.objects.filter(
        state=State.IN_PROGRESS, claimed_by__startswith=f"{host}:"
    ).values_list("id", "claimed_by", "claimed_at")
    for job_id, claimed_by, claimed_at in claims:
        pid_text = claimed_by[len(host) + 1:]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        previous_run = pid == me and claimed_at is not None and claimed_at < _STARTED
        if previous_run or (pid != me and not _process_alive(pid)):
            orphaned.append((job_id, claimed_by))
    released = 0
    for job_id, claimed_by in orphaned:
        released += OutboundJob.objects.filter(
            id=job_id, state=State.IN_PROGRESS, claimed_by=claimed_by
        ).update(state=State.PENDING, claimed_by="", next_attempt_at=timezone.now())
    if released:
        logger.info("took back %d outbound jobs held by a previous run on %s", released, host)
    return released


def _claimable(now: dt.datetime, skip_destinations: Iterable[tuple[str, str]] = ()):
    earlier_open = OutboundJob.objects.filter(
        ordering_key=OuterRef("ordering_key"),
        id__lt=OuterRef("id"),
        state__in=[State.PENDING, State.IN_PROGRESS],
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
    return State.DONE


def _finish(job: OutboundJob, state: str, *, result: str = "", error: str = "") -> None:
    changes = {"state": state, "finished_at": timezone.now(), "result": result[:2000]}
    if error:
        changes["last_error"] = error[:2000]
    OutboundJob.objects.filter(id=job.pk, state=State.IN_PROGRESS).update(**changes)


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
    release_orphaned()
    release_stale()
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
    """The scheduler's periodic job (``RIS_SCHEDULER_JOBS``)."""
    drain(time_budget=30.0)


@transaction.atomic
def retry(job_ids: Iterable[int] | None = None, *, actor: Actor | None = None) -> int:
    """Put FAILED jobs (all, or these) back in the queue with fresh attempts; one
    ``outbound.retry`` audit row per job, by ``actor`` (the operator; the system when omitted)."""
    jobs = OutboundJob.objects.select_for_update().filter(state=State.FAILED)
    if job_ids is not None:
        jobs = jobs.filter(id__in=list(job_ids))
    retried = list(jobs.values_list("id", "kind", "destination"))
    count = OutboundJob.objects.filter(
        id__in=[job_id for job_id, _, _ in retried], state=State.FAILED
    ).update(state=State.PENDING, attempts=0, next_attempt_at=timezone.now(), finished_at=None)
    who = actor or Actor.system("outbound.retry")
    record_all([
        access_event(who, "outbound.retry", object_type=OutboundJob._meta.label,
                     object_id=job_id, detail=f"{kind} to {destination or '(default)'}")
        for job_id, kind, destination in retried
    ])
    return count
