"""Forwarding writes: receiving a gateway instance, queueing relays, commitment reports, purging.

The DIMSE adapters (``scp``), the queue senders (``sender``) and the periodic jobs call these; no
other module changes forwarding rows. Status changes of steps never happen here: forwarding
records what reached the gateway and the PACS, and hands the first instance of a study to
``progress`` (which moves the step, through the state machine, only for devices whose steps
follow the images).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import time
import uuid
from copy import deepcopy
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone
from pydicom import Dataset, dcmread, dcmwrite
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError

from mpps.forwarding import coercion, iocm, progress, spool
from mpps.forwarding.models import (
    FINAL_DELIVERY_STATES,
    CommitmentRequest,
    InstanceDelivery,
    PacsDestination,
    PacsOrphanStudy,
    SpooledInstance,
    StepImages,
)
from mpps.models import StepLink
from ris import outbound_queue
from ris.models import OutboundJob
from worklist import audit
from worklist import services as worklist_services
from worklist.audit import Actor, record_access
from worklist.errors import DomainError, ErrorCode, InvalidTransition, NotFound
from worklist.models import Order, RequestedProcedure, ScheduledProcedureStep, StepStatus
from worklist.states import (
    IMAGE_LINKABLE_STEP_STATUSES,
    IMAGE_STARTABLE_STATUSES,
    INCORRECT_WORKLIST_ENTRY,
    PERFORMED_STEP_STATUSES,
)

logger = logging.getLogger("forwarding")

MPPS_JOB = "dicom.mpps"
STORE_JOB = "dicom.store"
COMMIT_JOB = "dicom.commit"

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class InvalidInstance(Exception):
    """The C-STORE data set cannot be spooled (missing or malformed UIDs)."""


class UnknownTransaction(Exception):
    """A storage commitment report names a Transaction UID ris never sent."""


def _valid_uid(value: object) -> bool:
    text = str(value or "")
    return 0 < len(text) <= 64 and bool(_UID.match(text))


# --- MPPS relay (IHE RAD-7 forward) -----------------------------------------------------------


def on_pps_received(sender, pps, operation: str, attributes: dict, **kwargs) -> None:
    """``mpps.signals.pps_received``: queue the same N-CREATE / N-SET for each MPPS destination.

    Runs inside the MPPS service's transaction. The ordering key per destination and PPS keeps
    N-CREATE before its N-SETs even when a PACS was down in between.
    """
    destinations = PacsDestination.objects.filter(active=True, send_mpps=True)
    payload = {
        "operation": operation,
        "sop_instance_uid": pps.sop_instance_uid,
        "character_set": pps.character_set,
        "attributes": attributes,
    }
    for destination in destinations:
        outbound_queue.enqueue(
            kind=MPPS_JOB,
            destination=destination.name,
            payload={**payload, "destination_id": destination.pk},
            ordering_key=outbound_queue.ordering_key(
                _pacs(destination.pk), "pps", pps.sop_instance_uid
            ),
        )


# --- the storage gateway ------------------------------------------------------------------------


@dataclass
class Match:
    step: ScheduledProcedureStep | None
    note: str = ""


def match_step(
    *, study_instance_uid: str, accession_number: str, modality: str, patient_id: str = ""
) -> Match:
    """The scheduled step an instance belongs to: the step staff linked its study to, else by
    Study Instance UID (the modality used the worklist), else by Accession Number (typed or
    scanned at the modality), else by Patient ID, modality and day (the modality keyed in only
    the patient ID: exactly one candidate step)."""
    linked = (
        SpooledInstance.objects.filter(
            study_instance_uid=study_instance_uid,
            origin=SpooledInstance.Origin.RECEIVED,
            linked_at__isnull=False,
            step__isnull=False,
        )
        .order_by("-linked_at")
        .values_list("step_id", flat=True)
        .first()
    )
    if linked is not None:
        # Staff linked this study to its step (``study_link``): more of it goes there too,
        # whatever its UIDs or accession say (they were what was wrong).
        step = (
            ScheduledProcedureStep.objects.select_related(
                "requested_procedure__order__patient", "station"
            )
            .get(pk=linked)
        )
        return Match(step, "matched by a link made by staff")
    procedures = list(RequestedProcedure.objects.filter(study_instance_uid=study_instance_uid))
    how = "Study Instance UID"
    if not procedures and accession_number:
        order = Order.objects.filter(accession_number=accession_number).first()
        procedures = list(order.procedures.all().order_by("pk")) if order else []
        how = "Accession Number"
    if not procedures and patient_id:
        return match_by_patient(patient_id=patient_id, modality=modality)
    steps = list(
        ScheduledProcedureStep.objects.filter(requested_procedure__in=procedures)
        .select_related("requested_procedure__order__patient", "station")
        .order_by("pk")
    )
    if not steps:
        return Match(None, "no order with this Study Instance UID or Accession Number")

    def rank(step: ScheduledProcedureStep) -> tuple[int, int]:
        performed = step.status in PERFORMED_STEP_STATUSES
        return (0 if step.modality == modality else 1, 0 if performed else 1)

    step = sorted(steps, key=rank)[0]
    note = f"matched by {how}"
    if step.status == StepStatus.CANCELED:
        note += f"; step {step.sps_id} is CANCELED"
    return Match(step, note)


#: Steps a Patient ID match may pick: still to be done, or under way (more series of it).
PATIENT_MATCH_STATUSES = (*IMAGE_STARTABLE_STATUSES, StepStatus.STARTED)


def match_by_patient(*, patient_id: str, modality: str, day: dt.date | None = None) -> Match:
    """The one step of this patient, this modality and this (department) day, or no match.

    For modalities where the technologist keys in the patient ID and nothing else (no worklist,
    no accession): with two candidates ris cannot know which exam this is, so the instance goes
    to the exceptions for staff rather than to a guess.
    """
    day = day or timezone.localdate()
    start = timezone.make_aware(dt.datetime.combine(day, dt.time(0)))
    end = timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)))
    candidates = list(
        ScheduledProcedureStep.objects.filter(
            requested_procedure__order__patient__patient_id=patient_id,
            modality=modality,
            status__in=PATIENT_MATCH_STATUSES,
            scheduled_start__gte=start,
            scheduled_start__lt=end,
        )
        .select_related("requested_procedure__order__patient", "station")
        .order_by("scheduled_start", "pk")[:10]
    )
    if len(candidates) == 1:
        return Match(candidates[0], "matched by Patient ID, modality and day")
    if not candidates:
        return Match(
            None,
            "no order with this Study Instance UID or Accession Number, and no step of patient "
            f"{patient_id} for {modality or 'this modality'} today",
        )
    ids = ", ".join(step.sps_id for step in candidates)
    return Match(
        None,
        f"patient {patient_id} has {len(candidates)} {modality} steps today ({ids}): "
        "ambiguous, link the study by hand",
    )


#: A study's instances arrive in a burst: its match and the order's values are looked up once
#: per burst rather than per instance (a 500-image CT: one lookup, not 500). An order corrected
#: during the burst reaches the instances that arrive after this many seconds.
MATCH_CACHE_SECONDS = 5.0
_match_cache: dict[tuple[str, str, str, str, str], tuple[float, Match, Dataset | None]] = {}


def _match_and_values(
    study_uid: str, accession: str, modality: str, charset: str, patient_id: str = ""
) -> tuple[Match, Dataset | None]:
    key = (study_uid, accession, modality, charset, patient_id)
    now = time.monotonic()
    cached = _match_cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    match = match_step(
        study_instance_uid=study_uid,
        accession_number=accession,
        modality=modality,
        patient_id=patient_id,
    )
    order = coercion.order_values(match.step, charset) if match.step is not None else None
    if len(_match_cache) > 1000:
        _match_cache.clear()
    _match_cache[key] = (now + MATCH_CACHE_SECONDS, match, order)
    return match, order


@dataclass
class Received:
    instance: SpooledInstance
    coerced: dict[str, list[str]] = field(default_factory=dict)


def _encode(ds: Dataset, file_meta: FileMetaDataset) -> bytes:
    """The instance as a Part 10 file (the spool's format)."""
    ds.file_meta = file_meta
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def receive_instance(
    *,
    dataset: Dataset,
    file_meta: FileMetaDataset,
    calling_ae_title: str,
    raw: bytes | None = None,
) -> Received:
    """Spool one C-STORE instance durably, coerced to its order, and queue it for each PACS.

    Returns once the file is fsynced and the rows committed, so the caller may answer Success.
    ``raw`` (the instance as received, with file meta) is written as is when nothing changes.
    """
    sop_uid = str(dataset.get("SOPInstanceUID", ""))
    sop_class = str(dataset.get("SOPClassUID", ""))
    study_uid = str(dataset.get("StudyInstanceUID", ""))
    series_uid = str(dataset.get("SeriesInstanceUID", ""))
    for label, value in (
        ("SOP Instance UID", sop_uid),
        ("SOP Class UID", sop_class),
        ("Study Instance UID", study_uid),
        ("Series Instance UID", series_uid),
    ):
        if not _valid_uid(value):
            raise InvalidInstance(f"{label} is missing or not a valid UID: {value[:64]!r}")
    match, order = _match_and_values(
        study_uid,
        str(dataset.get("AccessionNumber", "") or ""),
        str(dataset.get("Modality", "") or ""),
        coercion.charset_of(dataset),
        str(dataset.get("PatientID", "") or ""),
    )
    sent = {
        "patient_id": str(dataset.get("PatientID", "") or "")[:64],
        "patient_name": str(dataset.get("PatientName", "") or "")[:200],
        "accession_number": str(dataset.get("AccessionNumber", "") or "")[:16],
        "modality": str(dataset.get("Modality", "") or "")[:16],
    }
    changes: dict[str, list[str]] = {}
    if match.step is not None:
        changes = coercion.coerce(
            dataset,
            match.step,
            modifying_system=settings.RIS_AE_TITLE,
            source=calling_ae_title,
            order=deepcopy(order),
        )
    else:
        logger.warning(
            "gateway: instance %s from %s matches no order; forwarded unchanged",
            sop_uid,
            calling_ae_title,
        )
    data = raw if (raw is not None and not changes) else _encode(dataset, file_meta)
    relative = spool.relative_path(sop_uid)
    size = spool.write(relative, data)
    instance = _record(
        sop_uid=sop_uid,
        sop_class=sop_class,
        transfer_syntax=str(file_meta.TransferSyntaxUID),
        study_uid=study_uid,
        series_uid=series_uid,
        relative=relative,
        size=size,
        calling_ae_title=calling_ae_title,
        match=match,
        changes=changes,
        sent=sent,
    )
    return Received(instance, changes)


@transaction.atomic
def _record(
    *,
    sop_uid: str,
    sop_class: str,
    transfer_syntax: str,
    study_uid: str,
    series_uid: str,
    relative: str,
    size: int,
    calling_ae_title: str,
    match: Match,
    changes: dict,
    sent: dict[str, str] | None = None,
) -> SpooledInstance:
    now = timezone.now()
    fields = {
        **(sent or {}),
        "sop_class_uid": sop_class,
        "transfer_syntax_uid": transfer_syntax,
        "study_instance_uid": study_uid,
        "series_instance_uid": series_uid,
        "path": relative,
        "size": size,
        "calling_ae_title": calling_ae_title[:16],
        "step": match.step,
        "matched": match.step is not None,
        "match_note": match.note[:200],
        "coerced": changes,
        "received_at": now,
        "purged_at": None,
    }
    instance = SpooledInstance.objects.select_for_update().filter(sop_instance_uid=sop_uid).first()
    if match.step is not None:
        # The first instance of the study starts its step when the device's steps follow the
        # images (no query otherwise; the match is cached with the step's status).
        progress.start_from_images(match.step, source=f"received from {calling_ae_title}")
    if instance is None:
        instance = SpooledInstance.objects.create(sop_instance_uid=sop_uid, **fields)
        if instance.step_id:
            _count_new(instance, at=now)
    else:
        # A modality re-sending an instance (it never got our Success, or it was corrected):
        # the new file replaces the old one and is delivered again.
        previous_step_id = instance.step_id
        for name, value in fields.items():
            setattr(instance, name, value)
        instance.received_count += 1
        instance.save()
        if previous_step_id and previous_step_id != instance.step_id:
            _count_received(previous_step_id)
        if instance.step_id:
            _count_received(instance.step_id, at=now)
    # Older copies: a previous reception, or a file written just before a crash.
    transaction.on_commit(lambda: spool.remove_other_copies(sop_uid, keep=relative))
    destinations = list(PacsDestination.objects.filter(active=True, send_images=True))
    for destination in destinations:
        delivery, created = InstanceDelivery.objects.get_or_create(
            instance=instance,
            destination=destination,
            defaults={"study_instance_uid": study_uid},
        )
        if not created:
            InstanceDelivery.objects.filter(pk=delivery.pk).update(
                state=InstanceDelivery.State.PENDING,
                study_instance_uid=study_uid,
                commitment=None,
                committed_at=None,
            )
        ensure_store_job(destination, study_uid)
    return instance


def _count_new(instance: SpooledInstance, *, at: dt.datetime) -> None:
    """One more instance for its step (and one more series if it opens one): constant time,
    where a recount would grow with the study."""
    new_series = not (
        SpooledInstance.objects.filter(
            step_id=instance.step_id, series_instance_uid=instance.series_instance_uid
        )
        .exclude(pk=instance.pk)
        .exists()
    )
    StepImages.objects.get_or_create(step_id=instance.step_id)
    StepImages.objects.filter(step_id=instance.step_id).update(
        received_instances=F("received_instances") + 1,
        received_series=F("received_series") + (1 if new_series else 0),
        last_received_at=at,
    )


def _count_received(step_id: int, at: dt.datetime | None = None) -> None:
    # What the modality sent: corrected copies and rejection notes are ris's, not more images.
    counts = SpooledInstance.objects.filter(
        step_id=step_id, origin=SpooledInstance.Origin.RECEIVED
    ).aggregate(
        instances=Count("id"), series=Count("series_instance_uid", distinct=True)
    )
    images, _ = StepImages.objects.get_or_create(step_id=step_id)
    images.received_instances = counts["instances"]
    images.received_series = counts["series"]
    if at is not None:
        images.last_received_at = at
    # The received half only: the availability query writes the PACS half concurrently.
    images.save(update_fields=["received_instances", "received_series", "last_received_at"])


def store_job_key(destination: PacsDestination, study_uid: str) -> str:
    return outbound_queue.ordering_key(_pacs(destination.pk), "study", study_uid)


def _pacs(destination_id: int) -> str:
    """A PACS destination in ordering keys: by id, since staff may rename it."""
    return f"pacs:{destination_id}"


def ensure_store_job(destination: PacsDestination, study_uid: str) -> None:
    """Queue a ``dicom.store`` job for the study unless one is still waiting to start.

    One job sends every pending instance of the study over one association, so a 500-image CT is
    a handful of jobs, not 500. A job already running may miss instances committed after its last
    look: the next job (same ordering key, so strictly after it) picks them up.
    """
    key = store_job_key(destination, study_uid)
    waiting = OutboundJob.objects.filter(
        kind=STORE_JOB, ordering_key=key, state=OutboundJob.State.PENDING
    ).exists()
    if not waiting:
        outbound_queue.enqueue(
            kind=STORE_JOB,
            destination=destination.name,
            payload={"destination_id": destination.pk, "study_instance_uid": study_uid},
            ordering_key=key,
        )


# --- storage commitment -------------------------------------------------------------------------


@transaction.atomic
def commitment_requested(
    *, destination: PacsDestination, delivery_ids: list[int], transaction_uid: str
) -> CommitmentRequest:
    """Record a Transaction UID before its N-ACTION goes out, so a fast report finds it."""
    request = CommitmentRequest.objects.create(
        transaction_uid=transaction_uid,
        destination=destination,
        instance_count=len(delivery_ids),
    )
    InstanceDelivery.objects.filter(pk__in=delivery_ids).update(commitment=request)
    return request


@transaction.atomic
def commitment_reported(
    *,
    transaction_uid: str,
    committed: list[str],
    failed: list[tuple[str, int]],
    via: str,
) -> CommitmentRequest:
    """Apply a Storage Commitment N-EVENT-REPORT (PS3.4 J.3.3): committed instances are final
    (their spool files may go), failed ones are sent again."""
    request = (
        CommitmentRequest.objects.select_for_update()
        .filter(transaction_uid=transaction_uid)
        .select_related("destination")
        .first()
    )
    if request is None:
        raise UnknownTransaction(f"unknown Transaction UID {transaction_uid[:64]}")
    now = timezone.now()
    deliveries = InstanceDelivery.objects.filter(
        destination=request.destination, state=InstanceDelivery.State.SENT
    )
    done = deliveries.filter(instance__sop_instance_uid__in=committed).update(
        state=InstanceDelivery.State.COMMITTED, committed_at=now
    )
    failed_reasons = dict(failed)
    refused = list(
        deliveries.filter(instance__sop_instance_uid__in=list(failed_reasons)).select_related(
            "instance"
        )
    )
    for delivery in refused:
        reason = failed_reasons.get(delivery.instance.sop_instance_uid, 0)
        delivery.state = InstanceDelivery.State.PENDING
        delivery.commitment = None
        delivery.last_status = f"commitment failed 0x{reason:04X}"
        delivery.save(update_fields=["state", "commitment", "last_status"])
    for study_uid in {d.study_instance_uid for d in refused}:
        ensure_store_job(request.destination, study_uid)
    request.state = CommitmentRequest.State.PARTIAL if failed else CommitmentRequest.State.SUCCESS
    request.failed_count = len(failed)
    request.reported_at = now
    request.report_via = via[:100]
    request.save()
    logger.info(
        "storage commitment %s from %s: %d committed, %d failed",
        transaction_uid,
        request.destination.name,
        done,
        len(failed),
    )
    if settings.RIS_FORWARD_SPOOL_RETENTION_HOURS == 0:
        transaction.on_commit(purge_spool)
    return request


def expire_commitments() -> int:
    """Ask again for commitments that got no report in time (the PACS lost or never sent it)."""
    limit = timezone.now() - dt.timedelta(seconds=settings.RIS_FORWARD_COMMIT_TIMEOUT_SECONDS)
    expired = 0
    for request in CommitmentRequest.objects.filter(
        state=CommitmentRequest.State.REQUESTED, requested_at__lt=limit
    ):
        with transaction.atomic():
            changed = CommitmentRequest.objects.filter(
                pk=request.pk, state=CommitmentRequest.State.REQUESTED
            ).update(state=CommitmentRequest.State.EXPIRED)
            if changed:
                expired += 1
                queue_commitment(request)
    return expired


@transaction.atomic
def retry_commitment(request: CommitmentRequest) -> None:
    """The N-ACTION of ``request`` did not go through: ask again from a queued job."""
    CommitmentRequest.objects.filter(pk=request.pk).update(state=CommitmentRequest.State.EXPIRED)
    queue_commitment(request)


@transaction.atomic
def commit_later(destination: PacsDestination, delivery_ids: list[int]) -> CommitmentRequest:
    """Stored instances whose N-ACTION could not be sent (the association broke after the
    C-STOREs): a request under a fresh Transaction UID, asked by a queued job."""
    request = commitment_requested(
        destination=destination,
        delivery_ids=delivery_ids,
        transaction_uid=f"2.25.{uuid.uuid4().int}",
    )
    retry_commitment(request)
    return request


def adopt_uncommitted(older_than: dt.timedelta = dt.timedelta(minutes=1)) -> int:
    """Stored instances tied to no commitment request (a crash between the C-STOREs and the
    N-ACTION): give them one. Returns how many instances were adopted."""
    limit = timezone.now() - older_than
    adopted = 0
    for destination in PacsDestination.objects.filter(active=True, storage_commitment=True):
        ids = list(
            InstanceDelivery.objects.filter(
                destination=destination,
                state=InstanceDelivery.State.SENT,
                commitment__isnull=True,
                sent_at__lt=limit,
            ).values_list("pk", flat=True)[: settings.RIS_FORWARD_BATCH_SIZE]
        )
        if ids:
            commit_later(destination, ids)
            adopted += len(ids)
    return adopted


def queue_commitment(request: CommitmentRequest) -> None:
    """Queue a new N-ACTION for the still uncommitted instances of ``request``."""
    outbound_queue.enqueue(
        kind=COMMIT_JOB,
        destination=request.destination.name,
        payload={"destination_id": request.destination_id, "commitment_id": request.pk},
        ordering_key=outbound_queue.ordering_key(
            _pacs(request.destination_id), "commit", request.pk
        ),
    )


# --- spool upkeep ----------------------------------------------------------------------------


def purge_spool() -> int:
    """Delete spool files of instances every destination has committed (or stored, without
    commitment) longer ago than the retention; keep the rows. Returns the number deleted."""
    retention = dt.timedelta(hours=settings.RIS_FORWARD_SPOOL_RETENTION_HOURS)
    limit = timezone.now() - retention
    final = list(FINAL_DELIVERY_STATES)
    candidates = (
        SpooledInstance.objects.filter(purged_at__isnull=True)
        .exclude(path="")
        .annotate(
            total=Count("deliveries"),
            final=Count("deliveries", filter=Q(deliveries__state__in=final)),
            last=Max("deliveries__committed_at"),
            last_sent=Max("deliveries__sent_at"),
        )
        .filter(total__gt=0)
    )
    # Unmatched instances stay longer: staff may still link their study to its order, which
    # corrects the spool file and forwards it again (``study_link``).
    unmatched_retention = max(
        retention, dt.timedelta(hours=settings.RIS_FORWARD_UNMATCHED_RETENTION_HOURS)
    )
    unmatched_limit = timezone.now() - unmatched_retention
    purged = 0
    for instance in candidates.iterator():
        if instance.final != instance.total:
            continue
        finished = instance.last or instance.last_sent
        keep, until = (
            (retention, limit) if instance.matched else (unmatched_retention, unmatched_limit)
        )
        if keep and finished and finished > until:
            continue
        with transaction.atomic():
            # Received again since the query (new path, deliveries pending): not purgeable.
            changed = SpooledInstance.objects.filter(
                pk=instance.pk, purged_at__isnull=True, path=instance.path
            ).update(purged_at=timezone.now(), path="")
        if changed:
            spool.remove(instance.path)
            purged += 1
    return purged


#: Spool files no row names are deleted once this old (a crash between write and commit).
ORPHAN_FILE_AGE = dt.timedelta(hours=1)


def sweep_spool() -> int:
    """Delete spool files no instance row refers to, once they are ``ORPHAN_FILE_AGE`` old."""
    referenced = set(
        SpooledInstance.objects.filter(purged_at__isnull=True)
        .exclude(path="")
        .values_list("path", flat=True)
    )
    cutoff = (timezone.now() - ORPHAN_FILE_AGE).timestamp()
    orphans = spool.unreferenced(referenced, cutoff)
    for path in orphans:
        path.unlink(missing_ok=True)
    return len(orphans)


def requeue_orphans() -> int:
    """Queue a store job for pending deliveries that have none (a job that raced the last
    instance of its study, or a destination re-activated). Returns the number queued."""
    queued = 0
    pending = (
        InstanceDelivery.objects.filter(state=InstanceDelivery.State.PENDING)
        .values_list("destination_id", "study_instance_uid")
        .distinct()
    )
    destinations = {d.pk: d for d in PacsDestination.objects.filter(active=True)}
    for destination_id, study_uid in pending:
        destination = destinations.get(destination_id)
        if destination is None:
            continue
        key = store_job_key(destination, study_uid)
        if not OutboundJob.objects.filter(
            kind=STORE_JOB,
            ordering_key=key,
            state__in=[OutboundJob.State.PENDING, OutboundJob.State.IN_PROGRESS],
        ).exists():
            with transaction.atomic():
                ensure_store_job(destination, study_uid)
            queued += 1
    return queued


# --- study availability -----------------------------------------------------------------------


def record_availability(
    *, step: ScheduledProcedureStep, destination: str, series: int | None, instances: int | None
) -> StepImages:
    """The PACS holds the step's study (``series``/``instances`` as it counted them)."""
    now = timezone.now()
    images, _ = StepImages.objects.get_or_create(step=step)
    if images.pacs_confirmed_at is None or instances != images.pacs_instances:
        images.pacs_changed_at = now  # a new instance at the PACS: the study is not stable yet
    images.pacs_destination = destination[:64]
    images.pacs_series = series
    images.pacs_instances = instances
    images.pacs_checked_at = now
    if images.pacs_confirmed_at is None:
        images.pacs_confirmed_at = now
    # Only the PACS half of the row: the gateway counts received instances into the same row
    # concurrently (``_count_new``), and a whole-row save would write back a stale count.
    images.save(update_fields=[
        "pacs_changed_at", "pacs_destination", "pacs_series", "pacs_instances",
        "pacs_checked_at", "pacs_confirmed_at",
    ])
    return images


def record_not_found(*, step: ScheduledProcedureStep) -> None:
    images, _ = StepImages.objects.get_or_create(step=step)
    images.pacs_checked_at = timezone.now()
    images.save(update_fields=["pacs_checked_at"])


def record_pacs_studies(*, destination: str, studies: list[dict]) -> int:
    """Keep the studies at ``destination`` that belong to no order (``PacsOrphanStudy``).

    A study is ris's when its Study Instance UID is a requested procedure's, its Accession
    Number an order's, or the gateway forwarded it (its unmatched instances are listed as such).
    An orphan that now matches is resolved. Returns the number of open orphans of ``destination``.
    """
    now = timezone.now()
    uids = {s["study_instance_uid"] for s in studies if s["study_instance_uid"]}
    accessions = {s["accession_number"] for s in studies if s["accession_number"]}
    known_uids = set(
        RequestedProcedure.objects.filter(study_instance_uid__in=uids).values_list(
            "study_instance_uid", flat=True
        )
    ) | set(
        SpooledInstance.objects.filter(study_instance_uid__in=uids)
        .values_list("study_instance_uid", flat=True)
        .distinct()
    )
    known_accessions = set(
        Order.objects.filter(accession_number__in=accessions).values_list(
            "accession_number", flat=True
        )
    )
    with transaction.atomic():
        for study in studies:
            uid = study["study_instance_uid"]
            if not _valid_uid(uid):
                continue
            ours = uid in known_uids or study["accession_number"] in known_accessions
            if ours:
                PacsOrphanStudy.objects.filter(
                    destination=destination, study_instance_uid=uid, resolved_at__isnull=True
                ).update(resolved_at=now)
                continue
            values = {k: v for k, v in study.items() if k != "study_instance_uid"}
            values["accession_number"] = values["accession_number"][:16]
            values["patient_id"] = values["patient_id"][:64]
            values["patient_name"] = values["patient_name"][:200]
            values["modalities"] = values["modalities"][:64]
            values["description"] = values["description"][:64]
            orphan, created = PacsOrphanStudy.objects.get_or_create(
                destination=destination, study_instance_uid=uid,
                defaults={**values, "first_seen_at": now, "last_seen_at": now},
            )
            if not created:
                for name, value in values.items():
                    setattr(orphan, name, value)
                orphan.last_seen_at = now
                orphan.resolved_at = None
                orphan.save()
    return PacsOrphanStudy.objects.filter(destination=destination, resolved_at__isnull=True).count()


# --- reconciliation: link a study to the right order ----------------------------------------


@dataclass
class LinkResult:
    """What ``study_link`` did, for the person who asked (the web UI words it)."""

    study_instance_uid: str
    step: ScheduledProcedureStep
    #: Instances corrected from their spool file and queued again.
    corrected: int = 0
    #: Instances whose spool file was purged already: they must be corrected at the PACS.
    not_in_spool: int = 0
    #: Destinations without IOCM: the corrected copies go under the same UIDs and must replace
    #: the old ones there (the PACS must allow overwriting; the UI says to check it).
    replaced_at: list[str] = field(default_factory=list)
    #: IOCM destinations: corrected copies under new UIDs, and a rejection note for the old ones.
    rejected_at: list[str] = field(default_factory=list)
    rejection_notes: int = 0
    #: Patient IDs the instances carried before, when not the order's: a PACS that files an
    #: instance under its patient (Orthanc does) keeps the old copy there despite overwriting.
    previous_patient_ids: list[str] = field(default_factory=list)
    #: What became of each step the study was linked to before: ``sps_id -> RELEASE_*``.
    previous_steps: dict[str, str] = field(default_factory=dict)


#: What ``study_link`` did with a step the study was linked to before (the UI words them).
RELEASE_SCHEDULED = "scheduled"  # back on the worklist (110514)
RELEASE_KEPT_IMAGES = "kept_images"  # other images of it remain: it was performed
RELEASE_KEPT_PPS = "kept_pps"  # a performed procedure step is linked: MPPS decides
RELEASE_KEPT_STATUS = "kept_status"  # not started (nothing to undo) or finished (final)


#: The note of an instance that staff linked, in ``SpooledInstance.match_note``.
LINKED_NOTE = "linked by {actor}"


def _new_uid() -> str:
    # A UUID-derived UID (PS3.5 B.2): unique without a registered root or a counter.
    return f"2.25.{uuid.uuid4().int}"


def _spool_dataset(ds: Dataset, sop_uid: str) -> tuple[str, int]:
    relative = spool.relative_path(sop_uid)
    return relative, spool.write(relative, _encode(ds, ds.file_meta))


def _queue(instance: SpooledInstance, destinations: list[PacsDestination]) -> None:
    """(Re)deliver ``instance`` to ``destinations``: a delivery PENDING and a store job each."""
    for destination in destinations:
        delivery, created = InstanceDelivery.objects.get_or_create(
            instance=instance,
            destination=destination,
            defaults={"study_instance_uid": instance.study_instance_uid},
        )
        if not created:
            InstanceDelivery.objects.filter(pk=delivery.pk).update(
                state=InstanceDelivery.State.PENDING,
                study_instance_uid=instance.study_instance_uid,
                commitment=None,
                committed_at=None,
                last_status="corrected: sent again",
            )
        ensure_store_job(destination, instance.study_instance_uid)


def _held_by_iocm(instance: SpooledInstance) -> SpooledInstance:
    """The copy of a received instance that IOCM destinations hold: its latest correction (a
    study linked twice), else the instance itself."""
    latest = instance.corrections.order_by("-pk").first()
    return latest or instance


def study_link(
    *,
    study_instance_uid: str,
    step: ScheduledProcedureStep,
    actor: Actor,
    note: str = "",
) -> LinkResult:
    """Link a gateway study to ``step`` (unmatched, or matched to the wrong order).

    Every received instance of the study still in the spool is corrected to the step's order
    (``coercion.coerce`` with reason ``CORRECT``: a new Original Attributes item keeps what it
    said before, with the user as Source of Previous Values) and forwarded again:

    - to destinations without IOCM under the same UIDs, so that the corrected copy replaces
      the one they stored (the PACS must allow overwriting: PS3.4 leaves a second C-STORE of a
      SOP Instance UID to the SCP; the screen tells staff to check);
    - to IOCM destinations (``PacsDestination.iocm``) as a copy under new UIDs in the step's
      study, with a rejection note (``iocm.rejection_note``, title 113038 "Incorrect Modality
      Worklist Entry") naming the copies they hold under the wrong identity. The new UIDs are
      required: the archive hides every SOP Instance UID the note names.

    The step moves on as its device says (``progress``: images start it); a step the study was
    linked to before goes back to the worklist when it was started by these images only (as an
    MPPS discontinued with 110514 does), and both orders' status messages go to the HIS through
    the state machine. Audited on both steps. All in one transaction; spool files written for
    a rolled-back link are swept as unreferenced.
    """
    with transaction.atomic():
        result = _link(study_instance_uid=study_instance_uid, step=step, actor=actor, note=note)
    _match_cache.clear()
    return result


def _link(
    *, study_instance_uid: str, step: ScheduledProcedureStep, actor: Actor, note: str
) -> LinkResult:
    step = (
        ScheduledProcedureStep.objects.select_for_update(of=("self",))
        .select_related("requested_procedure__order__patient", "station")
        .get(pk=step.pk)
    )
    if step.status not in IMAGE_LINKABLE_STEP_STATUSES:
        raise InvalidTransition(
            f"step {step.sps_id} is {step.get_status_display().lower()}: images cannot be "
            "linked to it",
            params={"current": step.status, "target": StepStatus.STARTED},
        )
    originals = list(
        SpooledInstance.objects.select_for_update()
        .filter(study_instance_uid=study_instance_uid, origin=SpooledInstance.Origin.RECEIVED)
        .order_by("pk")
    )
    if not originals:
        raise NotFound(f"the gateway has no instance of study {study_instance_uid[:64]}")
    if all(i.step_id == step.pk and i.matched for i in originals):
        raise DomainError(
            f"the study is linked to step {step.sps_id} already", code=ErrorCode.DUPLICATE
        )
    result = LinkResult(study_instance_uid=study_instance_uid, step=step)
    previous = sorted({i.step_id for i in originals if i.step_id and i.step_id != step.pk})
    now = timezone.now()
    match_note = (LINKED_NOTE.format(actor=actor.name) + (f": {note}" if note else ""))[:200]
    order = step.requested_procedure.order
    _correct(
        originals, step, actor=actor, result=result, now=now, match_note=match_note,
        description=f"Linked to order {order.accession_number} by {actor.name}",
    )
    if not result.corrected:
        # Nothing left in the spool: nothing was changed; staff correct the PACS copies.
        return result
    _count_received(step.pk, at=now)  # a study "new" to the step: its stable time restarts
    progress.start_from_images(step, source=f"linked by {actor.name}")
    for previous_step in ScheduledProcedureStep.objects.filter(pk__in=previous).select_related(
        "requested_procedure__order", "station"
    ):
        _count_received(previous_step.pk)
        outcome = _release_wrong_step(previous_step, right=step, actor=actor, note=note)
        result.previous_steps[previous_step.sps_id] = outcome
        audit.record(
            actor,
            "step.images_unlinked",
            previous_step,
            after={"study_instance_uid": study_instance_uid, "linked_to": step.sps_id,
                   "outcome": outcome},
            detail=note,
        )
    audit.record(
        actor,
        "step.images_linked",
        step,
        before={"steps": list(result.previous_steps)},
        after={
            "study_instance_uid": study_instance_uid,
            "corrected": result.corrected,
            "not_in_spool": result.not_in_spool,
            "replaced_at": result.replaced_at,
            "rejected_at": result.rejected_at,
            "previous_patient_ids": result.previous_patient_ids,
        },
        detail=note,
    )
    return result


def _correct(
    originals: list[SpooledInstance],
    step: ScheduledProcedureStep,
    *,
    actor: Actor,
    result: LinkResult,
    now: dt.datetime,
    match_note: str,
    description: str,
) -> None:
    """Correct the received instances ``originals`` (one study) to ``step``'s order and queue
    them again, as ``study_link`` describes; ``result`` counts what was done.

    An IOCM archive gets a copy under new UIDs and a rejection note only for instances it has
    stored under the old identity; one that was not sent them yet simply gets the corrected
    instance under its own UIDs, like a destination without IOCM.
    """
    order = step.requested_procedure.order
    destinations = list(PacsDestination.objects.filter(active=True, send_images=True))
    plain = [d for d in destinations if not d.iocm]
    archives = [d for d in destinations if d.iocm]
    result.replaced_at = [d.name for d in plain]
    result.rejected_at = [d.name for d in archives]
    values: dict[str, Dataset] = {}
    new_study_uid = step.requested_procedure.study_instance_uid or _new_uid()
    new_series: dict[str, str] = {}
    rejected: dict[str, list[iocm.Rejected]] = {}
    note_headers: dict[str, Dataset] = {}
    patient_ids: set[str] = set()
    stored = Q(store_count__gt=0) | Q(
        state__in=[
            InstanceDelivery.State.SENT,
            InstanceDelivery.State.COMMITTED,
            InstanceDelivery.State.STORED,
        ]
    )
    for instance in originals:
        if not instance.path:
            result.not_in_spool += 1
            continue
        try:
            ds = dcmread(spool.absolute(instance.path))
        except (OSError, InvalidDicomError, ValueError) as exc:
            logger.warning("link: spool file of %s unreadable: %s", instance.sop_instance_uid, exc)
            result.not_in_spool += 1
            continue
        header = iocm.header_of(ds)  # as sent so far: the identity the archives hold
        if str(ds.get("PatientID", "")) != order.patient.patient_id:
            patient_ids.add(str(ds.get("PatientID", "")))
        charset = coercion.charset_of(ds)
        if charset not in values:
            values[charset] = coercion.order_values(step, charset)
        changes = coercion.coerce(
            ds,
            step,
            modifying_system=settings.RIS_AE_TITLE,
            source=actor.name,
            order=deepcopy(values[charset]),
            reason=coercion.CORRECT,
        )
        if not changes:
            # Its values agree with the order already (a merge's surviving patient, or a study
            # whose identity was right): only the link changes, the copies stored stay right.
            SpooledInstance.objects.filter(pk=instance.pk).update(
                step=step, matched=True, match_note=match_note, linked_at=now
            )
            result.corrected += 1
            continue
        same_uids = list(plain)
        held = _held_by_iocm(instance) if archives else instance
        at_archives = InstanceDelivery.objects.filter(
            instance=held, destination__in=archives
        ).exclude(state=InstanceDelivery.State.WITHDRAWN)
        if archives and held.pk == instance.pk and not at_archives.filter(stored).exists():
            same_uids += archives  # never stored there: nothing to reject, no new UIDs
        elif archives:
            if at_archives.exists():
                rejected.setdefault(held.study_instance_uid, []).append(
                    iocm.Rejected(
                        held.sop_class_uid, held.sop_instance_uid, held.series_instance_uid
                    )
                )
                header.StudyInstanceUID = held.study_instance_uid
                note_headers.setdefault(held.study_instance_uid, header)
                at_archives.update(
                    state=InstanceDelivery.State.WITHDRAWN,
                    last_status=f"rejected: corrected to {order.accession_number}"[:120],
                )
            copy = deepcopy(ds)
            series_uid = new_series.setdefault(instance.series_instance_uid, _new_uid())
            coercion.reidentify(
                copy,
                study_uid=new_study_uid,
                series_uid=series_uid,
                sop_uid=_new_uid(),
                modifying_system=settings.RIS_AE_TITLE,
                source=actor.name,
                amend_last=bool(changes),
            )
            relative, size = _spool_dataset(copy, copy.SOPInstanceUID)
            correction = SpooledInstance.objects.create(
                sop_instance_uid=copy.SOPInstanceUID,
                sop_class_uid=instance.sop_class_uid,
                transfer_syntax_uid=instance.transfer_syntax_uid,
                study_instance_uid=new_study_uid,
                series_instance_uid=series_uid,
                path=relative,
                size=size,
                calling_ae_title=instance.calling_ae_title,
                step=step,
                matched=True,
                match_note=match_note,
                coerced=changes,
                patient_id=instance.patient_id,
                patient_name=instance.patient_name,
                accession_number=instance.accession_number,
                modality=instance.modality,
                origin=SpooledInstance.Origin.CORRECTION,
                corrects=instance,
                linked_at=now,
            )
            _queue(correction, archives)
        # The received instance, corrected in place: the copy sent under its own UIDs.
        old_path = instance.path
        instance.path, instance.size = _spool_dataset(ds, instance.sop_instance_uid)
        instance.step = step
        instance.matched = True
        instance.match_note = match_note
        instance.coerced = changes
        instance.linked_at = now
        instance.purged_at = None
        instance.save()
        transaction.on_commit(lambda path=old_path: spool.remove(path))
        _queue(instance, same_uids)
        result.corrected += 1
    for study_uid, instances in rejected.items():
        kos = iocm.rejection_note(
            rejected=instances,
            header=note_headers[study_uid],
            series_uid=_new_uid(),
            sop_uid=_new_uid(),
            manufacturer="ris",
            station_name=settings.RIS_AE_TITLE,
            description=description,
        )
        relative, size = _spool_dataset(kos, kos.SOPInstanceUID)
        rejection = SpooledInstance.objects.create(
            sop_instance_uid=kos.SOPInstanceUID,
            sop_class_uid=iocm.KEY_OBJECT_SELECTION,
            transfer_syntax_uid=str(kos.file_meta.TransferSyntaxUID),
            study_instance_uid=study_uid,
            series_instance_uid=kos.SeriesInstanceUID,
            path=relative,
            size=size,
            calling_ae_title=settings.RIS_AE_TITLE[:16],
            matched=True,
            match_note=f"IOCM rejection note for {len(instances)} instance(s): {match_note}"[
                :200
            ],
            origin=SpooledInstance.Origin.REJECTION_NOTE,
            modality="KO",
        )
        _queue(rejection, archives)
        result.rejection_notes += 1
    result.previous_patient_ids = sorted(patient_ids - {""})


def _release_wrong_step(
    wrong: ScheduledProcedureStep, *, right: ScheduledProcedureStep, actor: Actor, note: str
) -> str:
    """Give back the step a study was wrongly linked to; returns what became of it.

    Back to the worklist (SCHEDULED, reason 110514 "Incorrect worklist entry selected", the
    transition an MPPS discontinued for a wrong entry takes) when it was started and nothing
    else says it was performed: no other received instance, no performed procedure step. A
    finished step stays as it is (final in the state machine): staff settle it with the HIS.
    """
    if SpooledInstance.objects.filter(
        step_id=wrong.pk, origin=SpooledInstance.Origin.RECEIVED
    ).exists():
        return RELEASE_KEPT_IMAGES
    if StepLink.objects.filter(step_id=wrong.pk).exists():
        return RELEASE_KEPT_PPS
    if wrong.status != StepStatus.STARTED:
        return RELEASE_KEPT_STATUS
    reason = (
        f"images linked to order {right.requested_procedure.order.accession_number} by "
        f"{actor.name}" + (f": {note}" if note else "")
    )
    try:
        with transaction.atomic():
            worklist_services.step_transition(
                step=wrong,
                to=StepStatus.SCHEDULED,
                actor=actor,
                reason=reason[:200],
                reason_code=INCORRECT_WORKLIST_ENTRY,
            )
    except DomainError as exc:  # e.g. a step without a start time: the link still stands
        logger.info("step %s stays started after the link: %s", wrong.sps_id, exc.message)
        return RELEASE_KEPT_STATUS
    return RELEASE_SCHEDULED


# --- the patient's identity changed at the HIS (A40 merge, A47 identifier change) -----------


def on_patient_identity_changed(sender, patient, actor: Actor, reason: str, **kwargs) -> None:
    """``worklist.signals.patient_identity_changed``: correct what the spool still holds.

    The received instances of the patient's steps still in the spool (not yet forwarded, or
    kept by the retention) are corrected to the patient as the HIS now knows them and queued
    again, to each destination as a link does (``_correct``: same UIDs without IOCM, new UIDs
    and a rejection note for what an IOCM archive stored). Runs in the HL7 service's
    transaction: an A40 or A47 that is refused changes no spool file's row.
    """
    instances = list(
        SpooledInstance.objects.select_for_update()
        .filter(
            step__requested_procedure__order__patient=patient,
            origin=SpooledInstance.Origin.RECEIVED,
        )
        .exclude(path="")
        .order_by("pk")
    )
    studies: dict[tuple[str, int], list[SpooledInstance]] = {}
    for instance in instances:
        studies.setdefault((instance.study_instance_uid, instance.step_id), []).append(instance)
    now = timezone.now()
    for (study_uid, step_id), originals in studies.items():
        step = ScheduledProcedureStep.objects.select_related(
            "requested_procedure__order__patient", "station"
        ).get(pk=step_id)
        result = LinkResult(study_instance_uid=study_uid, step=step)
        why = f"patient {reason}: now {patient.patient_id}"
        _correct(
            originals, step, actor=actor, result=result, now=now,
            match_note=f"{why} ({actor.name})"[:200], description=why,
        )
        audit.record(
            actor,
            "step.images_corrected",
            step,
            after={
                "study_instance_uid": study_uid,
                "corrected": result.corrected,
                "replaced_at": result.replaced_at,
                "rejected_at": result.rejected_at,
                "previous_patient_ids": result.previous_patient_ids,
            },
            detail=why,
        )


def patient_id_of(instance: SpooledInstance) -> str:
    """The Patient ID the instance goes on with: the order's when coerced, else as sent."""
    coerced = (instance.coerced or {}).get("PatientID")
    return coerced[1] if coerced and len(coerced) > 1 else instance.patient_id


def instances_transferred(
    *, actor: Actor, received: bool, study_uid: str, patient_id: str, count: int, peer: str
) -> None:
    """One audit row per study and association (IHE ATNA DICOM Instances Transferred,
    PS3.15 A.5.3.2), not per instance: received from a modality, or sent to a PACS (``peer`` is
    then the destination)."""
    record_access(
        actor,
        "dicom.instances_received" if received else "dicom.instances_sent",
        object_type="dicom.study",
        object_id=study_uid[:64],
        detail=f"{count} instances {'from' if received else 'to'} {peer}",
        after={"instances": count, "patient_id": patient_id,
               "peer" if received else "destination": peer},
    )
