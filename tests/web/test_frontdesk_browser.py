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
    station = DeviceFactory(ae_title="CT1", modality=Modality.CT)
    ptype = ProcedureTypeFactory(code_value="CTHEAD", code_meaning="CT head",
                                 modality=Modality.CT, default_duration_minutes=20)
    ptype.stations.add(station)
    return first_step(make_order(procedure_type=ptype, station=station, start=_later_today()))


@pytest.fixture
def desk_page(browser, live_server):
    user = make_user("browser_desk", Role.FRONT_DESK)
    client = Client()
    client.force_login(user)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    yield page
    context.close()


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
