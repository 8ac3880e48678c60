"""The next-free-slot list in the web UI: one click books; exceptions list the exams to rebook."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from ris.roles import Role
from tests.factories import at, first_step, make_order
from worklist.models import OpeningPeriod, ScheduleException, StepStatus

MONDAY = dt.date.today() + dt.timedelta(days=7 - dt.date.today().weekday() + 7)


def test_the_list_offers_free_slots_and_one_click_books(desk, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head))
    page = desk.get(reverse("web:free_slots", kwargs={"pk": step.pk}))
    slots = page.context["slots"]
    assert slots and all(slot.station == ct1 for slot in slots)
    first = slots[0]
    response = desk.post(
        reverse("web:book_slot", kwargs={"pk": step.pk}),
        {"station": first.station.pk, "start": first.start.isoformat()},
    )
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED
    assert step.scheduled_start == first.start
    assert response["Location"].endswith(f"#block-{step.pk}")


def test_a_slot_taken_meanwhile_is_refused_in_words(desk, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head))
    other = first_step(make_order(procedure_type=ct_head))
    slot = desk.get(reverse("web:free_slots", kwargs={"pk": step.pk})).context["slots"][0]
    desk.post(reverse("web:book_slot", kwargs={"pk": other.pk}),
              {"station": slot.station.pk, "start": slot.start.isoformat()})
    response = desk.post(reverse("web:book_slot", kwargs={"pk": step.pk}),
                         {"station": slot.station.pk, "start": slot.start.isoformat()},
                         follow=True)
    step.refresh_from_db()
    assert step.status == StepStatus.UNSCHEDULED
    assert "is booked from" in response.content.decode()


def test_the_order_page_links_the_next_free_slot(desk, ct_head):
    order = make_order(procedure_type=ct_head)
    page = desk.get(reverse("web:order_detail", kwargs={"pk": order.pk})).content.decode()
    assert reverse("web:free_slots", kwargs={"pk": first_step(order).pk}) in page


def test_an_exception_lists_the_exams_it_displaces_with_a_rebook_link(client_as, ct_head, ct1):
    for weekday in range(7):
        OpeningPeriod.objects.create(station=ct1, weekday=weekday, opens_at=dt.time(7),
                                     closes_at=dt.time(19))
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9, day=MONDAY)))
    ScheduleException.objects.create(
        station=ct1, starts=at(0, day=MONDAY), ends=at(0, day=MONDAY + dt.timedelta(days=1)),
        kind=ScheduleException.Kind.DOWN, reason="tube replacement",
    )
    page = client_as(Role.FRONT_DESK).get(reverse("web:schedule_exceptions")).content.decode()
    assert "tube replacement" in page and "Station down" in page
    assert reverse("web:free_slots", kwargs={"pk": step.pk}) in page


def test_booking_on_a_holiday_is_refused_in_chinese(desk, ct_head, ct1):
    ScheduleException.objects.create(
        station=ct1, starts=at(0, day=MONDAY), ends=at(0, day=MONDAY + dt.timedelta(days=1)),
        kind=ScheduleException.Kind.HOLIDAY,
    )
    step = first_step(make_order(procedure_type=ct_head))
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    response = desk.post(reverse("web:book"), {
        "step": step.pk, "station": ct1.pk, "date": MONDAY.isoformat(), "time": "09:00",
    })
    errors = " ".join(response.context["form"].non_field_errors())
    assert "CT1" in errors and "节假日" in errors and "holiday" not in errors


def test_the_free_slot_list_costs_the_same_queries_on_a_busy_station(desk, ct_head, ct1):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    step = first_step(make_order(procedure_type=ct_head))
    url = reverse("web:free_slots", kwargs={"pk": step.pk})
    with CaptureQueriesContext(connection) as quiet:
        desk.get(url)
    for hour in range(8, 18):
        make_order(procedure_type=ct_head, station=ct1,
                   start=at(hour, day=MONDAY - dt.timedelta(days=7)))
    with CaptureQueriesContext(connection) as busy:
        desk.get(url)
    assert len(busy) == len(quiet)
