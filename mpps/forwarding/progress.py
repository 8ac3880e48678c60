"""Step status from images, for modalities that send no MPPS (many CR, DX, US, older CT/MR).

A device's ``step_progress`` (``worklist.models.StepProgress``, or the department's
``RIS_STEP_PROGRESS_DEFAULT``) says what moves its steps:

- ``MPPS`` (the default): only MPPS (``mpps.services``); images only fill the counters.
- ``IMAGES``: the first instance of a matched study, received by the gateway or first seen at a
  PACS by the availability query, moves a SCHEDULED/ARRIVED/READY step to STARTED (order IP,
  the HIS is told); the study *stable* (no new instance, at the gateway or at the PACS, for
  ``RIS_STUDY_STABLE_SECONDS``, as archives define a stable study) moves it to COMPLETED (order
  CM). MPPS for such a device is kept and forwarded, but does not move its steps.
- ``BOTH``: images move the step as with ``IMAGES`` until a PPS is linked to it; from then on
  MPPS wins (a stable study no longer completes it: the PPS COMPLETED does).

Every move goes through ``worklist.services.step_transition`` (the one state machine), which
audits it with the reason ("images received: ...", "study stable: ...") and queues the HIS
message in the same transaction. The device is the step's station (the AE it was scheduled on).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from mpps.forwarding.models import StepImages
from mpps.models import StepLink
from worklist import services as worklist_services
from worklist.audit import Actor
from worklist.errors import DomainError
from worklist.models import ScheduledProcedureStep, StepProgress, StepStatus
from worklist.states import IMAGE_STARTABLE_STATUSES, images_move_steps, progress_mode

logger = logging.getLogger("forwarding.progress")

#: The actor of image-driven moves in the audit trail.
ACTOR_NAME = "images"


def _images_drive(step: ScheduledProcedureStep) -> bool:
    """Do images move this step now (its device's mode; with BOTH, no PPS linked yet)?"""
    mode = progress_mode(step.station)
    if not images_move_steps(mode):
        return False
    if mode == StepProgress.BOTH and StepLink.objects.filter(step_id=step.pk).exists():
        return False  # MPPS came: it drives the step from now on
    return True


def start_from_images(step: ScheduledProcedureStep, *, source: str) -> bool:
    """The first instance of the step's study was seen (``source`` says where): STARTED.

    Returns True when the step was started. Costs no query for a step that is not waiting or
    whose device is driven by MPPS (the gateway calls this for every instance). Call it inside
    the transaction that recorded the instance.
    """
    if step.status not in IMAGE_STARTABLE_STATUSES:
        return False
    if not images_move_steps(progress_mode(step.station)) or not _images_drive(step):
        return False
    try:
        started = worklist_services.step_transition(
            step=step,
            to=StepStatus.STARTED,
            actor=Actor.system(ACTOR_NAME),
            reason=f"images received: first instance {source}"[:200],
        )
    except DomainError as exc:  # e.g. started or cancelled meanwhile: the images are kept
        logger.info("images of step %s did not start it: %s", step.sps_id, exc.message)
        current = ScheduledProcedureStep.objects.filter(pk=step.pk).values_list("status")
        step.status = next((row[0] for row in current), step.status)
        return False
    step.status = started.status  # callers (the gateway's match cache) keep this object
    logger.info("step %s STARTED by images %s", step.sps_id, source)
    return True


def stable_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) - dt.timedelta(seconds=settings.RIS_STUDY_STABLE_SECONDS)


def _image_driven_devices() -> Q:
    """Steps whose station (or the department default) lets images move them."""
    modes = [StepProgress.IMAGES, StepProgress.BOTH]
    own = Q(station__step_progress__in=modes)
    if images_move_steps(progress_mode(None)):
        own |= Q(station__isnull=True) | Q(station__step_progress="")
    return own


def stable_steps(now: dt.datetime | None = None) -> list[ScheduledProcedureStep]:
    """STARTED steps of image-driven devices whose study has had no new instance since the
    cutoff (and has at least one)."""
    cutoff = stable_cutoff(now)
    quiet_gateway = Q(images__last_received_at__isnull=True) | Q(
        images__last_received_at__lte=cutoff
    )
    quiet_pacs = Q(images__pacs_changed_at__isnull=True) | Q(images__pacs_changed_at__lte=cutoff)
    some = Q(images__last_received_at__isnull=False) | Q(images__pacs_changed_at__isnull=False)
    return list(
        ScheduledProcedureStep.objects.filter(status=StepStatus.STARTED)
        .filter(_image_driven_devices())
        .filter(some, quiet_gateway, quiet_pacs)
        .select_related("station", "images")
        .order_by("pk")[:500]
    )


def _describe(images: StepImages) -> str:
    counts = []
    if images.received_instances:
        counts.append(f"{images.received_instances} received by the gateway")
    if images.pacs_instances:
        counts.append(f"{images.pacs_instances} at {images.pacs_destination or 'the PACS'}")
    return ", ".join(counts) or "no instance count"


def complete_stable_studies() -> int:
    """The scheduler's ``study_stable`` job: COMPLETE the steps whose study is stable."""
    completed = 0
    seconds = settings.RIS_STUDY_STABLE_SECONDS
    for step in stable_steps():
        if not _images_drive(step):
            continue
        reason = f"study stable: no new instance for {seconds} s ({_describe(step.images)})"
        try:
            worklist_services.step_transition(
                step=step,
                to=StepStatus.COMPLETED,
                actor=Actor.system(ACTOR_NAME),
                reason=reason[:200],
            )
        except DomainError as exc:
            logger.info("stable study of step %s did not complete it: %s", step.sps_id, exc)
            continue
        completed += 1
        logger.info("step %s COMPLETED: %s", step.sps_id, reason)
    return completed
