"""Panels of the order page fed by the MPPS, forwarding and HL7 modules (their selectors)."""

from __future__ import annotations

from mpps.forwarding import selectors as forwarding
from mpps.forwarding.models import InstanceDelivery
from mpps.models import PerformedProcedureStep
from ris import outbound_queue
from ris.models import InboundMessage


def order_panels(order, steps) -> dict:
    """Performed steps, HL7 messages, HIS notifications and image forwarding of an order.

    One query each, whatever the number of steps: the steps' images (received, at the PACS)
    come joined with the steps (``forwarding.with_images``), their deliveries in one GROUP BY.
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
        outbound_queue.jobs_about("order", order.pk).order_by("-id")[:50]
    )
    deliveries = {
        step_id: [(InstanceDelivery.State(state), n) for state, n in sorted(by_state.items())]
        for step_id, by_state in forwarding.delivery_counts_by_step(
            step.pk for step in steps
        ).items()
    }
    return {
        "performed": performed,
        "messages": messages,
        "notifications": notifications,
        "deliveries": deliveries,
    }
