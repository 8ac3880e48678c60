"""The order page's audit trail reads as sentences, in English and Simplified Chinese."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from ris.roles import Role
from tests.factories import at, first_step, make_order
from web.audit_text import SENTENCES
from worklist import services
from worklist.audit import Actor
from worklist.models import StepStatus

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def test_every_action_the_domain_writes_has_a_sentence():
    statuses = {f"step.{status.lower()}" for status in StepStatus if status != "UNSCHEDULED"}
    written = {
        "patient.create", "patient.update", "patient.merge", "visit.create", "visit.update",
        "order.create", "order.update", "order.status", "procedure.change", "procedure.update",
        "step.create", "step.import", "step.update", "step.book", "step.reschedule", "step.undo",
    } | statuses
    assert written <= set(SENTENCES)


def test_booking_and_check_in_read_as_sentences_with_station_and_time(client_as, ct_head, ct1):
    order = make_order(procedure_type=ct_head)
    step = first_step(order)
    desk = Actor.system("desk")
    services.step_schedule(step=step, start=at(9, 30, day=TOMORROW), station=ct1, actor=desk)
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=desk)
    page = client_as(Role.FRONT_DESK).get(reverse("web:order_detail", kwargs={"pk": order.pk}))
    text = page.content.decode()
    assert f"{step.description} booked on CT1 for {TOMORROW:%Y-%m-%d} 09:30." in text
    assert "Checked in: the patient has arrived." in text
    assert "Order status changed from" not in text or "scheduled" in text
    for raw in ("step.book", "step.arrived", "<code>"):
        assert raw not in text


def test_the_trail_reads_in_chinese(client_as, ct_head, ct1):
    order = make_order(procedure_type=ct_head)
    services.step_schedule(step=first_step(order), start=at(9, day=TOMORROW), station=ct1,
                           actor=Actor.system("desk"))
    services.order_cancel(order=order, actor=Actor.system("desk"), reason="duplicate order")
    client = client_as(Role.FRONT_DESK)
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    text = client.get(reverse("web:order_detail", kwargs={"pk": order.pk})).content.decode()
    assert "检查已取消" in text
    step = first_step(order)
    assert f"{step.description} 已预约到 CT1，时间 {TOMORROW:%Y-%m-%d} 09:00。" in text
    assert "Exam cancelled" not in text and "Order status changed" not in text
