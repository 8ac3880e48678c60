"""The front desk's safe actions and live pages in a real browser (Debian Chromium)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from ris.roles import Role
from tests.factories import DeviceFactory, ProcedureTypeFactory, first_step, make_order
from tests.web.conftest import make_user
from worklist.models import Modality, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _later_today(minutes: int = 30) -> dt.datetime:
    """A slot later today (so that the day list shows it), at least ``minutes`` ahead."""
    moment = timezone.localtime() + dt.timedelta(minutes=minutes)
    end_of_day = timezone.localtime().replace(hour=23, minute=0, second=0, microsecond=0)
    return min(moment.replace(second=0, microsecond=0), end_of_day)


@pytest.fixture
def scheduled_step(db):
    station = DeviceFactory(ae_title="CT01", modality=Modality.CT)
    ptype = ProcedureTypeFactory(code_value="CTHEAD", code_meaning="CT head",
                                 modality=Modality.CT, default_duration_minutes=20)
    ptype.stations.add(station)
    return first_step(make_order(procedure_type=ptype, station=station, start=_later_today()))


@pytest.fixture
def desk_context(browser, live_server):
    user = make_user("browser_desk", Role.FRONT_DESK)
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    yield context
    context.close()


@pytest.fixture
def desk_page(desk_context):
    return desk_context.new_page()


def test_no_show_asks_for_a_reason_and_can_be_undone(desk_page, live_server, scheduled_step):
    page = desk_page
    page.goto(f"{live_server.url}/day/")
    row = page.locator(f"#step-{scheduled_step.pk}")
    row.locator("a:has-text('No-show')").click()
    confirm = page.locator(f"#step-{scheduled_step.pk}.row-confirm")
    confirm.wait_for()
    scheduled_step.refresh_from_db()
    assert scheduled_step.status == StepStatus.SCHEDULED  # asking changed nothing
    confirm.locator("select[name=reason]").select_option("not_prepared")
    confirm.locator("button:has-text('Confirm no-show')").click()
    page.locator(f"#step-{scheduled_step.pk}.row-cancelled").wait_for()
    assert "Preparation not done" in row.inner_text()
    scheduled_step.refresh_from_db()
    assert scheduled_step.status == StepStatus.CANCELED
    row.locator("button:has-text('Undo')").click()
    again = f"#step-{scheduled_step.pk}:not(.row-cancelled) button:has-text('Arrived')"
    page.locator(again).wait_for()
    scheduled_step.refresh_from_db()
    assert scheduled_step.status == StepStatus.SCHEDULED


def test_an_mpps_from_the_modality_shows_on_the_open_check_in_list_and_order_page_within_5_s(
    desk_context, live_server, scheduled_step, ris_service
):
    """Both pages are open before the modality sends anything; nobody reloads them."""
    import time

    from tests.mpps.modality import Modality as ModalitySCU
    from tests.mpps.modality import series_item

    order_id = scheduled_step.requested_procedure.order_id
    day = desk_context.new_page()
    day.goto(f"{live_server.url}/day/")
    order = desk_context.new_page()
    order.goto(f"{live_server.url}/orders/{order_id}/")
    row = day.locator(f"#step-{scheduled_step.pk}")
    assert "Scheduled" in row.inner_text()
    assert row.locator("button:has-text('Ready')").count() == 1

    modality = ModalitySCU(port=ris_service.dicom_port, called_ae=ris_service.ae_title)
    response, uid = modality.n_create(modality.pps_for(scheduled_step))
    assert response.status == 0x0000
    sent = time.monotonic()
    day.locator(f"#step-{scheduled_step.pk}[data-status=STARTED]").wait_for(timeout=5_000)
    order.locator(".badge.ord-ip").wait_for(timeout=5_000)
    assert time.monotonic() - sent < 5
    assert row.locator("button:has-text('Ready')").count() == 0  # no stale button

    assert modality.n_set(uid, modality.completed(series_item(images=2))).status == 0x0000
    day.locator(f"#step-{scheduled_step.pk}[data-status=COMPLETED]").wait_for(timeout=5_000)
    order.locator(".badge.ord-cm").wait_for(timeout=5_000)
    assert "Completed" in order.locator("table.grid").first.inner_text()


def test_a_booking_late_in_the_day_is_scrolled_into_view_and_highlighted(
    desk_page, live_server, scheduled_step
):
    page = desk_page
    ptype = scheduled_step.requested_procedure.procedure_type
    waiting = first_step(make_order(procedure_type=ptype))
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    page.goto(
        f"{live_server.url}/calendar/book/?station={scheduled_step.station_id}"
        f"&date={tomorrow.isoformat()}&time=18:15"
    )
    # the form proposes the waiting exam that fits this CT slot
    assert page.locator("#id_step").input_value() == str(waiting.pk)
    with page.expect_navigation():
        page.click("button[type=submit].primary")
    block = page.locator(f"#block-{waiting.pk}.highlight")
    block.wait_for()
    page.wait_for_function(
        "el => { const r = el.getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight; }",
        arg=block.element_handle(),
    )


def test_booking_a_waiting_exam_from_the_next_free_slot_list_in_one_click(
    desk_page, live_server, scheduled_step
):
    page = desk_page
    ptype = scheduled_step.requested_procedure.procedure_type
    order = make_order(procedure_type=ptype)
    waiting = first_step(order)
    page.goto(f"{live_server.url}/orders/{order.pk}/")
    with page.expect_navigation():
        page.click("a:has-text('Next free slot')")
    first = page.locator("table.slots tbody tr").first
    when = first.locator("td").nth(1).inner_text().split("–")[0]
    with page.expect_navigation():
        first.locator("button:has-text('Book')").click()
    page.locator(f"#block-{waiting.pk}.highlight").wait_for()
    waiting.refresh_from_db()
    assert waiting.status == StepStatus.SCHEDULED
    assert timezone.localtime(waiting.scheduled_start).strftime("%H:%M") == when


def test_the_statistics_page_draws_charts_with_the_demo_data(desk_page, live_server):
    from worklist.demo import load_demo

    load_demo()
    page = desk_page
    page.goto(f"{live_server.url}/statistics/")
    assert page.locator("svg.chart").count() == 2
    assert page.locator("svg.chart rect").count() > 0
    assert page.locator("table.grid tbody tr").count() > 0


def test_cancel_asks_for_a_coded_reason_and_can_be_undone(desk_page, live_server, scheduled_step):
    page = desk_page
    order_id = scheduled_step.requested_procedure.order_id
    page.goto(f"{live_server.url}/orders/{order_id}/")
    with page.expect_navigation():
        page.click("a:has-text('Cancel order')")
    scheduled_step.refresh_from_db()
    assert scheduled_step.status == StepStatus.SCHEDULED  # asking changed nothing
    page.select_option("select[name=reason]", "wrong_procedure")
    with page.expect_navigation():
        page.click("button:has-text('Cancel the order')")
    page.locator(".badge.ord-ca").wait_for()
    assert "Wrong procedure ordered" in page.inner_text("main")
    with page.expect_navigation():
        page.click("button:has-text('Undo cancel')")
    page.locator(".badge.ord-sc").wait_for()
    assert "Cancel undone" in page.inner_text(".messages")
    assert page.locator("button:has-text('Undo cancel')").count() == 0
    scheduled_step.refresh_from_db()
    assert scheduled_step.status == StepStatus.SCHEDULED


def test_a_booking_into_reserved_time_warns_and_books_once_confirmed(
    desk_page, live_server, scheduled_step
):
    from worklist.models import SlotReservation

    station = scheduled_step.station
    ptype = scheduled_step.requested_procedure.procedure_type
    day = timezone.localdate() + dt.timedelta(days=1)
    SlotReservation.objects.create(station=station, weekday=day.weekday(),
                                   starts_at=dt.time(8), ends_at=dt.time(10),
                                   kind=SlotReservation.Kind.URGENT)
    waiting = first_step(make_order(procedure_type=ptype))
    page = desk_page
    page.goto(f"{live_server.url}/calendar/book/?station={station.pk}&date={day}&time=08:30"
              f"&step={waiting.pk}")
    with page.expect_navigation():
        page.click("button:has-text('Book')")
    warning = page.locator("#booking-warnings")
    assert "reserved for urgent cases" in warning.inner_text()
    waiting.refresh_from_db()
    assert waiting.status == StepStatus.UNSCHEDULED
    warning.locator("input[name=confirm_warnings]").check()
    with page.expect_navigation():
        page.click("button:has-text('Book')")
    page.locator(f"#block-{waiting.pk}.highlight").wait_for()


def test_the_day_plan_and_the_slip_print_without_the_screen_parts(
    desk_page, live_server, scheduled_step
):
    import re

    other = DeviceFactory(ae_title="CT02", modality=Modality.CT)
    ptype = scheduled_step.requested_procedure.procedure_type
    ptype.stations.add(other)
    make_order(procedure_type=ptype, station=other, start=_later_today())
    page = desk_page
    page.goto(f"{live_server.url}/day/print/?date={timezone.localdate()}")
    assert page.locator("section.print-plan").count() == 2
    page.emulate_media(media="print")
    assert page.locator(".topbar").is_hidden() and page.locator(".noprint").is_hidden()
    breaks = page.eval_on_selector_all(
        "section.print-plan", "els => els.map(e => getComputedStyle(e).breakAfter)"
    )
    assert breaks == ["page", "page"]  # one station per sheet
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) >= 2
    page.emulate_media(media="screen")
    page.goto(f"{live_server.url}/steps/{scheduled_step.pk}/slip/")
    page.emulate_media(media="print")
    slip = page.locator(".slip")
    assert slip.is_visible() and page.locator(".topbar").is_hidden()
    assert scheduled_step.requested_procedure.order.accession_number in slip.inner_text()
    assert "CT01" in slip.inner_text()
