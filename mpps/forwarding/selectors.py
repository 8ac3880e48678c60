"""Reads for the web UI and the API: what a step's images are doing."""

from __future__ import annotations

from mpps.forwarding.models import InstanceDelivery, SpooledInstance, StepImages


def step_images(step) -> StepImages | None:
    """Received counts and "images at PACS" (with the PACS's counts) of a step, or None."""
    return StepImages.objects.filter(step=step).first()


def unmatched_instances():
    """Gateway instances no order matched (forwarded unchanged): for staff to look at."""
    return SpooledInstance.objects.filter(matched=False)


def delivery_counts(step) -> dict[str, int]:
    """Deliveries of a step's gateway instances by state, e.g. {"COMMITTED": 12, "PENDING": 3}."""
    counts: dict[str, int] = {}
    for state in InstanceDelivery.objects.filter(instance__step=step).values_list(
        "state", flat=True
    ):
        counts[state] = counts.get(state, 0) + 1
    return counts
