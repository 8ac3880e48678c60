"""Reads of the MPPS domain for the web UI and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from mpps.models import EXCEPTION_STATES, PerformedProcedureStep
from worklist.models import ScheduledProcedureStep


def open_exceptions() -> QuerySet[PerformedProcedureStep]:
    """PPS waiting for staff: unmatched, or linked to a step that could not follow them."""
    return (
        PerformedProcedureStep.objects.filter(reconciliation__in=EXCEPTION_STATES)
        .prefetch_related("series")
        .order_by("-started_at", "-id")
    )


def performed_steps_for(step: ScheduledProcedureStep) -> QuerySet[PerformedProcedureStep]:
    """Every PPS linked to a scheduled step, oldest first (appends come after the first)."""
    return (
        PerformedProcedureStep.objects.filter(links__step=step)
        .prefetch_related("series")
        .order_by("started_at", "id")
    )


def performed_step(sop_instance_uid: str) -> PerformedProcedureStep | None:
    """The PPS with this SOP Instance UID (MPPS N-GET, MPPS-RS Retrieve), or None."""
    return PerformedProcedureStep.objects.filter(sop_instance_uid=sop_instance_uid).first()
