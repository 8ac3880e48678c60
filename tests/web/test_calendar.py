"""The scheduling calendar: booking a waiting exam, moving one, and what the domain refuses."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from ris.roles import Role
from tests.factories import DeviceFactory, at, first_step, make_order
from worklist.models import AuditEvent, Modality, StepStatus

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def _slot(station, hour, minute=0, day=None, **extra) -> dict:
    day = day or TOMORROW
    return {"station": station.pk, "date": day.isoformat(), "time": f"{hour:02d}:{minute:02d}",
            **extra}


def test_booking_puts_a_waiting_exam_on_the_station(desk, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 9, 30)})
    step.refresh_from_db()
    assert response.status_code == 302
    assert step.status == StepStatus.SCHEDULED
    assert step.station == ct1
    assert step.scheduled_start == at(9, 30, day=TOMORROW)
    assert AuditEvent.objects.filter(action="step.book", actor="front_desk").exists()


def test_a_booking_that_overlaps_is_refused_with_the_domain_message(desk, ct_head, ct1):
    make_order(procedure_type=ct_head, station=ct1, start=at(9, 0, day=TOMORROW))
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 9, 10)})
    step.refresh_from_db()
    assert response.status_code == 200
    errors = " ".join(response.context["form"].non_field_errors())
    assert f"CT1 is booked from {TOMORROW:%Y-%m-%d} 09:00 for 20 min" in errors
    assert step.status == StepStatus.UNSCHEDULED


def test_a_station_that_allows_overbooking_takes_the_overlap(desk, ct_head):
    busy = DeviceFactory(ae_title="CTX", modality=Modality.CT, allow_overbooking=True)
    make_order(procedure_type=ct_head, station=busy, start=at(9, 0, day=TOMORROW))
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(busy, 9, 10)})
    step.refresh_from_db()
    assert response.status_code == 302
    assert step.status == StepStatus.SCHEDULED


def test_a_booking_outside_opening_hours_asks_first_and_is_audited_once_confirmed(
    desk, ct_head, ct1
):
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 18, 50)})
    assert response.status_code == 200
    (warning,) = response.context["warnings"]
    assert "CT1 is closed at" in warning and "outside its opening hours" in warning
    assert 'name="confirm_warnings"' in response.content.decode()
    step.refresh_from_db()
    assert step.status == StepStatus.UNSCHEDULED
    confirmed = desk.post(reverse("web:book"),
                          {"step": step.pk, **_slot(ct1, 18, 50), "confirm_warnings": "on"})
    assert confirmed.status_code == 302
    step.refresh_from_db()
    assert step.scheduled_start == at(18, 50, day=TOMORROW)
    event = AuditEvent.objects.get(action="step.book")
    assert event.detail == "outside opening hours, confirmed"
    detail = desk.get(reverse("web:order_detail", kwargs={"pk": step.requested_procedure.order_id}))
    assert "Booked outside the opening hours, confirmed." in detail.content.decode()


def test_booking_form_with_missing_fields_shows_field_errors(desk, ct_head):
    response = desk.post(reverse("web:book"), {"time": "25:00"})
    form = response.context["form"]
    assert response.status_code == 200
    assert {"step", "station", "date", "time"} <= set(form.errors)


def test_a_scheduled_step_cannot_be_booked_again_from_the_waiting_list(desk, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(8, day=TOMORROW)))
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 10)})
    assert response.status_code == 200
    assert "step" in response.context["form"].errors


def test_moving_a_step_changes_its_time_and_station(desk, ct_head, ct1, ct2):
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(8, day=TOMORROW)))
    response = desk.post(reverse("web:move", kwargs={"pk": step.pk}), _slot(ct2, 14, 15))
    step.refresh_from_db()
    assert response.status_code == 302
    assert (step.station, step.scheduled_start) == (ct2, at(14, 15, day=TOMORROW))
    assert AuditEvent.objects.filter(action="step.reschedule").exists()


def test_moving_an_arrived_exam_books_it_scheduled_in_the_new_slot(desk, ct_head, ct1, ct2):
    from worklist import services
    from worklist.audit import Actor

    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(8, day=TOMORROW)))
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=Actor.system())
    response = desk.post(reverse("web:move", kwargs={"pk": step.pk}), _slot(ct2, 14, 15))
    step.refresh_from_db()
    assert response.status_code == 302
    assert (step.status, step.station) == (StepStatus.SCHEDULED, ct2)


def test_moving_onto_a_busy_slot_is_refused_and_changes_nothing(desk, ct_head, ct1):
    make_order(procedure_type=ct_head, station=ct1, start=at(10, day=TOMORROW))
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(8, day=TOMORROW)))
    response = desk.post(reverse("web:move", kwargs={"pk": step.pk}), _slot(ct1, 10, 5))
    step.refresh_from_db()
    assert response.status_code == 200
    assert "is booked from" in " ".join(response.context["form"].non_field_errors())
    assert step.scheduled_start == at(8, day=TOMORROW)


def test_a_completed_step_cannot_be_moved(desk, ct_head, ct1):
    from worklist import services
    from worklist.audit import Actor

    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(8)))
    for status in (StepStatus.STARTED, StepStatus.COMPLETED):
        services.step_transition(step=step, to=status, actor=Actor.ae("CT1"))
    response = desk.post(reverse("web:move", kwargs={"pk": step.pk}), _slot(ct1, 12))
    step.refresh_from_db()
    assert response.status_code == 302
    assert step.status == StepStatus.COMPLETED and step.scheduled_start == at(8)


def test_day_view_has_a_column_per_station_and_a_block_per_step(client_as, ct_head, ct1, ct2):
    order = make_order(procedure_type=ct_head, station=ct1, start=at(9))
    response = client_as(Role.TECHNOLOGIST).get(reverse("web:calendar"))
    grid = response.context["grid"]
    assert [c.station.ae_title for c in grid.columns] == ["CT1", "CT2"]
    (block,) = grid.columns[0].blocks
    assert block.step.pk == first_step(order).pk
    assert block.top == (9 - 7) * 60 / 15 and block.span == 20 / 15
    assert order.patient.person_name.display() in response.content.decode()


def test_closed_hours_have_no_booking_link(desk, ct1):
    grid = desk.get(reverse("web:calendar")).context["grid"]
    (column,) = grid.columns
    assert grid.first == dt.time(7)
    assert all(slot.open for slot in column.slots)
    ct1.opens_at = dt.time(8)
    ct1.save()
    DeviceFactory(ae_title="CT9", modality=Modality.CT, opens_at=dt.time(7),
                  closes_at=dt.time(19))
    grid = desk.get(reverse("web:calendar")).context["grid"]
    early = [s.open for s in grid.columns[0].slots[:4]]
    assert early == [False, False, False, False]


def test_week_view_shows_seven_days_of_one_station(desk, ct_head, ct1, ct2):
    make_order(procedure_type=ct_head, station=ct2, start=at(9, day=TOMORROW))
    response = desk.get(reverse("web:calendar"),
                        {"view": "week", "station": ct2.pk, "date": TOMORROW.isoformat()})
    grid = response.context["grid"]
    assert len(grid.columns) == 7
    assert {c.station for c in grid.columns} == {ct2}
    assert sum(len(c.blocks) for c in grid.columns) == 1


def test_overbooked_steps_are_laid_side_by_side(desk, ct_head):
    busy = DeviceFactory(ae_title="CTX", modality=Modality.CT, allow_overbooking=True)
    for minute in (0, 10):
        make_order(procedure_type=ct_head, station=busy, start=at(9, minute))
    columns = desk.get(reverse("web:calendar")).context["grid"].columns
    (column,) = [c for c in columns if c.station == busy]
    assert sorted((b.lane, b.lanes) for b in column.blocks) == [(0, 2), (1, 2)]


@pytest.mark.parametrize(
    "params",
    [{"date": "2026-13-45"}, {"view": "week", "station": "x"}, {"slot": "7"},
     {"modality": "<script>"}, {"date": "99999-01-01"}, {"date": "9999-12-31", "view": "week"},
     {"date": "0001-01-01"}],
)
def test_bad_calendar_parameters_fall_back_instead_of_failing(desk, ct1, params):
    assert desk.get(reverse("web:calendar"), params).status_code == 200


def test_a_nonexistent_local_time_is_a_field_error(desk, ct_head, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    paris = DeviceFactory(ae_title="CTB", modality=Modality.CT)
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(
        reverse("web:book"),
        {"step": step.pk, **_slot(paris, 2, 30, day=dt.date(2030, 3, 31))},
    )
    assert response.status_code == 200
    assert "time" in response.context["form"].errors


def test_a_booking_in_the_past_is_refused_with_a_clear_message(desk, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head))
    yesterday = TOMORROW - dt.timedelta(days=2)
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 9, day=yesterday)})
    step.refresh_from_db()
    assert response.status_code == 200
    errors = " ".join(response.context["form"].non_field_errors())
    assert f"{yesterday:%Y-%m-%d} 09:00 is in the past: choose a later time" in errors
    assert step.status == StepStatus.UNSCHEDULED


def test_moving_into_the_past_is_refused(desk, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9, day=TOMORROW)))
    yesterday = TOMORROW - dt.timedelta(days=2)
    response = desk.post(reverse("web:move", kwargs={"pk": step.pk}), _slot(ct1, 10, day=yesterday))
    step.refresh_from_db()
    assert response.status_code == 200
    assert step.scheduled_start == at(9, day=TOMORROW)


def test_after_booking_the_calendar_opens_on_the_exam_highlighted(desk, ct_head, ct1):
    step = first_step(make_order(procedure_type=ct_head))
    response = desk.post(reverse("web:book"), {"step": step.pk, **_slot(ct1, 9, 30)})
    assert response["Location"].endswith(f"highlight={step.pk}#block-{step.pk}")
    page = desk.get(response["Location"]).content.decode()
    assert f'id="block-{step.pk}" class="block st-scheduled highlight"' in page


def test_after_moving_the_calendar_opens_on_the_exam_highlighted(desk, ct_head, ct1, ct2):
    step = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9, day=TOMORROW)))
    response = desk.post(reverse("web:move", kwargs={"pk": step.pk}), _slot(ct2, 11))
    assert response["Location"].endswith(f"#block-{step.pk}")


def test_the_book_form_proposes_the_waiting_exam_that_fits_the_slot(desk, ct_head, ct1):
    from tests.factories import ProcedureTypeFactory

    mr = ProcedureTypeFactory(code_value="MRBRAIN", modality=Modality.MR)
    long_ct = ProcedureTypeFactory(code_value="CTLONG", modality=Modality.CT,
                                   default_duration_minutes=90)
    long_ct.stations.add(ct1)
    make_order(procedure_type=mr)  # oldest, but another modality
    make_order(procedure_type=long_ct)  # longer than the free hour before the next booking
    routine = first_step(make_order(procedure_type=ct_head))
    urgent = first_step(make_order(procedure_type=ct_head, priority="STAT"))
    make_order(procedure_type=ct_head, station=ct1, start=at(10, day=TOMORROW))
    url = f"{reverse('web:book')}?station={ct1.pk}&date={TOMORROW.isoformat()}&time=09:00"
    form = desk.get(url).context["form"]
    assert form.initial["step"] == urgent.pk
    urgent.delete()
    assert desk.get(url).context["form"].initial["step"] == routine.pk


def test_a_step_named_in_the_link_is_not_replaced_by_the_proposal(desk, ct_head, ct1):
    first = first_step(make_order(procedure_type=ct_head))
    make_order(procedure_type=ct_head, priority="STAT")
    url = f"{reverse('web:book')}?step={first.pk}&station={ct1.pk}&date={TOMORROW}&time=09:00"
    assert str(desk.get(url).context["form"].initial["step"]) == str(first.pk)
