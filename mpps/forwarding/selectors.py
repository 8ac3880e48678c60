"""Reads for the web UI and the API: what a step's images are doing."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from mpps.forwarding.models import InstanceDelivery, SpooledInstance, StepImages
from worklist.models import ScheduledProcedureStep
from worklist.states import IMAGE_LINKABLE_STEP_STATUSES


def step_images(step) -> StepImages | None:
    """Received counts and "images at PACS" (with the PACS's counts) of a step, or None."""
    return StepImages.objects.filter(step=step).first()


def with_images(
    steps: QuerySet[ScheduledProcedureStep],
) -> QuerySet[ScheduledProcedureStep]:
    """``steps`` with their ``StepImages`` joined in the same query (``images_of`` reads it).

    A list page shows the "images at PACS" marker of every row: a LEFT JOIN on the one-to-one
    keeps the page's query count what it was, however many steps it lists.
    """
    return steps.select_related("images")


def images_of(step: ScheduledProcedureStep) -> StepImages | None:
    """The step's ``StepImages`` or None; no query when the step came from ``with_images``."""
    return getattr(step, "images", None)


def unmatched_instances():
    """Gateway instances no order matched (forwarded unchanged): for staff to look at."""
    return SpooledInstance.objects.filter(matched=False)


def delivery_counts(step) -> dict[str, int]:
    """Deliveries of a step's gateway instances by state, e.g. {"COMMITTED": 12, "PENDING": 3}."""
    return delivery_counts_by_step([step.pk]).get(step.pk, {})


def delivery_counts_by_step(step_ids) -> dict[int, dict[str, int]]:
    """Deliveries of the steps' gateway instances by step and state, in one GROUP BY query.

    ``{step_id: {"COMMITTED": 12, "PENDING": 3}}``; a step without deliveries is left out.
    """
    counts: dict[int, dict[str, int]] = {}
    rows = (
        InstanceDelivery.objects.filter(instance__step_id__in=list(step_ids))
        .values_list("instance__step_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for step_id, state, n in rows:
        counts.setdefault(step_id, {})[state] = n
    return counts


def step_to_link(*, accession_number: str, modality: str = "") -> ScheduledProcedureStep | None:
    """The step a study is linked to when staff name its order by accession number: the step
    of the study's modality that may take images, else the order's first such step."""
    steps = list(
        ScheduledProcedureStep.objects.filter(
            requested_procedure__order__accession_number=accession_number.strip(),
            status__in=IMAGE_LINKABLE_STEP_STATUSES,
        ).order_by("pk")
    )
    same = [s for s in steps if modality and s.modality == modality]
    return (same or steps or [None])[0]


def gateway_studies_of(step) -> list[str]:
    """Study Instance UIDs of the instances the gateway received for ``step``."""
    return list(
        SpooledInstance.objects.filter(step=step, origin=SpooledInstance.Origin.RECEIVED)
        .values_list("study_instance_uid", flat=True)
        .distinct()
        .order_by("study_instance_uid")
    )
