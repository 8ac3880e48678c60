"""Panels of the order page fed by the MPPS, forwarding and HL7 modules (their selectors)."""

from __future__ import annotations

from dataclasses import dataclass

from mpps.forwarding import selectors as forwarding
from mpps.models import PerformedProcedureStep
from ris.models import InboundMessage, OutboundJob


@dataclass
class StepForwarding:
    step: object
    images: object | None
    deliveries: dict[str, int]


def order_panels(order, steps) -> dict:
    """Performed steps, HL7 messages, HIS notifications and image forwarding of an order.

    A few queries per step; an order has one to a handful of steps.
    """
    performed = list(
        PerformedProcedureStep.objects.filter(links__step__in=steps)
        .distinct()
        .order_by("started_at", "id")
    )
    messages = list(
        InboundMessage.objects.filter(order=order)
        .defer("raw", "ack")
        .order_by("-received_at", "-id")[:50]
    )
    notifications = list(
        OutboundJob.objects.filter(ordering_key__endswith=f":order:{order.pk}").order_by("-id")[
            :50
        ]
    )
    images = [
        StepForwarding(step, forwarding.step_images(step), forwarding.delivery_counts(step))
        for step in steps
        if step.status in ("STARTED", "COMPLETED", "DISCONTINUED")
    ]
    return {
        "performed": performed,
        "messages": messages,
        "notifications": notifications,
        "images": images,
    }
