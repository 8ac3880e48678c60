"""Live regions (web/live.py): a poll with the shown version is 204 until something changes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from tests.factories import at, first_step, make_order
from worklist import services
from worklist.audit import Actor
from worklist.models import StepStatus


@pytest.fixture
def step(ct_head, ct1):
    return first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9)))


def _poll(client, url, region, version):
    sep = "&" if "?" in url else "?"
    return client.get(f"{url}{sep}v={version}", HTTP_HX_REQUEST="true", HTTP_HX_TARGET=region)


@pytest.mark.parametrize(("name", "region"), [
    ("web:day_list", "day-table"), ("web:dashboard", "dashboard"),
    ("web:calendar", "calendar-live"),
])
def test_a_poll_is_204_until_a_step_changes_then_the_region_comes_back(
    desk, step, name, region
):
    url = reverse(name)
    version = desk.get(url).context["live_version"]
    assert _poll(desk, url, region, version).status_code == 204
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=Actor.ae("CT1"))
    changed = _poll(desk, url, region, version)
    assert changed.status_code == 200
    assert f'id="{region}"' in changed.content.decode()
    assert changed.context["live_version"] != version


def test_the_order_page_follows_its_steps(desk, step):
    url = reverse("web:order_detail", kwargs={"pk": step.requested_procedure.order_id})
    version = desk.get(url).context["live_version"]
    assert _poll(desk, url, "order-body", version).status_code == 204
    services.step_schedule(step=step, start=at(10, day=dt.date.today() + dt.timedelta(days=1)),
                           actor=Actor.system("desk"))
    changed = _poll(desk, url, "order-body", version)
    assert changed.status_code == 200
    assert b"<html" not in changed.content  # only the region
