"""Worklist housekeeping: the scheduler's ``worklist_housekeeping`` job and what it decides.

Steps still SCHEDULED, ARRIVED or READY hours after their scheduled end were not performed (a no
show, an exam done on another order, a modality that reported nothing). Left alone they crowd
the Modality Worklist for ever. Two settings decide (both documented in the README):

- ``RIS_STEP_OVERDUE_HOURS`` (2; 0 = off): such a step is **overdue** after this many hours past
  its end: counted and marked on the dashboard (``overdue_q``), nothing else changes.
- ``RIS_STEP_OVERDUE_ACTION`` after ``RIS_STEP_OVERDUE_ACTION_HOURS`` (24) past its end:
  ``""`` (default) leaves it; ``"REMOVE"`` takes it off the worklist (``off_worklist_at``;
  status unchanged, the order keeps it, booking it again puts it back, the HIS is not told);
  a step status (``"CANCELED"``) moves it there through the state machine, audited, and the HIS
  gets the order's new status. Steps are never deleted.

``RIS_MWL_KEEP_FINISHED_MINUTES`` (0) is the other half of housekeeping and lives in the
worklist query (``worklist.matching``): started, completed and discontinued steps stay on the
worklist that long after their last change, then leave (0: at once).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from worklist import services
from worklist.audit import Actor
from worklist.errors import DomainError
from worklist.models import ScheduledProcedureStep, StepStatus
from worklist.states import OVERDUE_STATUSES

logger = logging.getLogger("worklist.housekeeping")

REMOVE = "REMOVE"
ACTOR_NAME = "housekeeping"
#: Steps handled per run: a backlog is worked through over several runs.
BATCH = 500


def overdue_q(now: dt.datetime | None = None, *, hours: float | None = None) -> Q:
    """Steps waiting ``hours`` (default RIS_STEP_OVERDUE_HOURS) after their end; Q() matching
    nothing when the setting is 0 (off)."""
    hours = settings.RIS_STEP_OVERDUE_HOURS if hours is None else hours
    if hours <= 0:
        return Q(pk__isnull=True)  # matches nothing
    cutoff = (now or timezone.now()) - dt.timedelta(hours=hours)
    return Q(
        status__in=sorted(OVERDUE_STATUSES),
        scheduled_end__lt=cutoff,
        off_worklist_at__isnull=True,
    )


def overdue_cutoff(now: dt.datetime | None = None) -> dt.datetime | None:
    """Steps waiting that ended before this are overdue (None: marking is off)."""
    hours = settings.RIS_STEP_OVERDUE_HOURS
    if hours <= 0:
        return None
    return (now or timezone.now()) - dt.timedelta(hours=hours)


def overdue_steps(now: dt.datetime | None = None):
    return ScheduledProcedureStep.objects.filter(overdue_q(now)).order_by("scheduled_start", "pk")


def run(now: dt.datetime | None = None) -> int:
    """The scheduler job: apply RIS_STEP_OVERDUE_ACTION to steps overdue long enough."""
    action = (settings.RIS_STEP_OVERDUE_ACTION or "").strip().upper()
    hours = settings.RIS_STEP_OVERDUE_ACTION_HOURS
    if not action or hours <= 0:
        return 0
    handled = 0
    due = ScheduledProcedureStep.objects.filter(overdue_q(now, hours=hours)).order_by("pk")
    actor = Actor.system(ACTOR_NAME)
    for step in due[:BATCH]:
        reason = f"not performed {hours} h after its scheduled end (housekeeping)"
        try:
            if action == REMOVE:
                services.step_remove_from_worklist(step=step, actor=actor, reason=reason)
            else:
                services.step_transition(step=step, to=StepStatus(action), actor=actor,
                                         reason=reason)
        except (DomainError, ValueError) as exc:
            logger.error("housekeeping: step %s cannot become %s: %s", step.sps_id, action, exc)
            return handled  # a wrong setting: say it once per run, not once per step
        handled += 1
    if handled:
        logger.info("housekeeping: %s overdue step(s): %s", handled, action)
    return handled
