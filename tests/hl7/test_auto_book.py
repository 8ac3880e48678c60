"""RIS_HL7_AUTO_BOOK: a new order without a start time is booked into the first free slot."""

from __future__ import annotations

import pytest

from ris.hl7 import handler
from tests.hl7.conftest import orm, read_ack
from worklist.models import Order, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _step(placer: str):
    order = Order.objects.get(placer_order_number=placer)
    return order, order.procedures.get().steps.get()


def test_an_unscheduled_new_order_is_booked_when_the_site_turns_it_on(catalogue, settings):
    settings.RIS_HL7_AUTO_BOOK = True
    ack = read_ack(handler.handle(orm("AUTO-1", "PL-AUTO1", start=""), "test"))
    assert ack.code == "AA"
    order, step = _step("PL-AUTO1")
    assert step.status == StepStatus.SCHEDULED
    assert step.station == catalogue.ct1 and step.scheduled_start is not None
    assert order.status == "SC"


def test_without_the_setting_it_waits_for_the_front_desk(catalogue, settings):
    settings.RIS_HL7_AUTO_BOOK = False
    read_ack(handler.handle(orm("AUTO-2", "PL-AUTO2", start=""), "test"))
    assert _step("PL-AUTO2")[1].status == StepStatus.UNSCHEDULED
