"""The printable day plan per station and the patient's appointment slip."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from tests.factories import PatientFactory, at, first_step, make_order

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def test_the_day_plan_lists_time_patient_procedure_and_preparation(desk, ct_head, ct1):
    patient = PatientFactory(patient_id="PLAN1", allergies="iodine")
    make_order(patient=patient, procedure_type=ct_head, station=ct1, start=at(9, day=TOMORROW))
    page = desk.get(reverse("web:day_plan"), {"date": TOMORROW.isoformat(), "station": ct1.pk})
    text = page.content.decode()
    assert "09:00–09:20" in text and "PLAN1" in text and "iodine" in text
    assert "window.print()" in text


def test_the_slip_says_when_and_where_in_chinese(desk, ct_head, ct1):
    order = make_order(procedure_type=ct_head, station=ct1, start=at(9, 30, day=TOMORROW))
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    text = desk.get(
        reverse("web:appointment_slip", kwargs={"pk": first_step(order).pk})
    ).content.decode()
    assert "09:30" in text and "CT1" in text and order.accession_number in text
    assert "Please come" not in text


def test_prints_are_audited_as_exports(desk, ct_head, ct1):
    from worklist.models import AuditEvent

    order = make_order(procedure_type=ct_head, station=ct1, start=at(9, 30, day=TOMORROW))
    desk.get(reverse("web:day_plan"), {"date": TOMORROW.isoformat(), "station": ct1.pk})
    step = first_step(order)
    desk.get(reverse("web:appointment_slip", kwargs={"pk": step.pk}))
    rows = AuditEvent.objects.filter(action="export.print").order_by("id")
    assert [row.object_id for row in rows] == [f"day plan {TOMORROW}", f"slip {step.pk}"]
    assert rows[0].detail == f"day plan {TOMORROW} {ct1.ae_title}"
    assert {row.actor_type for row in rows} == {AuditEvent.ActorType.USER}
