"""Worklist housekeeping (``worklist.housekeeping``): overdue steps and how long finished ones
stay on the Modality Worklist. The worklist is read with ``worklist.matching.worklist_query``,
the query the MWL SCP answers with (its DIMSE side is tested in tests/mwl)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from pydicom import Dataset

from ris.models import HL7Destination, OutboundJob
from tests.factories import at, first_step, make_order
from worklist import housekeeping, services
from worklist.audit import Actor
from worklist.matching import worklist_query
from worklist.models import AuditEvent, ScheduledProcedureStep, StepStatus

pytestmark = pytest.mark.django_db


def on_worklist() -> list[str]:
    query = worklist_query(Dataset())
    sps_ids = [row[0] for row in query.queryset.values_list("sps_id")]
    return sps_ids


@pytest.fixture
def late(ct1):
    """A step that was to end 30 hours ago and was never performed."""
    start = timezone.now() - dt.timedelta(hours=30, minutes=15)
    return first_step(make_order(station=ct1, start=start))


@pytest.fixture
def ct1():
    from tests.factories import DeviceFactory

    return DeviceFactory(ae_title="CT1", allow_overbooking=True)


def test_a_step_waiting_hours_after_its_end_is_overdue_and_counted_on_the_dashboard(
    late, ct1, settings, client
):
    settings.RIS_STEP_OVERDUE_HOURS = 2
    first_step(make_order(station=ct1, start=at(23, 0)))  # later today: not overdue
    assert list(housekeeping.overdue_steps()) == [late]

    from ris.roles import Role
    from tests.web.conftest import make_user

    client.force_login(make_user("desk", Role.FRONT_DESK))
    page = client.get(reverse("web:dashboard"))
    assert page.context["board"].overdue == 1


def test_overdue_marking_is_off_with_0_hours(late, settings):
    settings.RIS_STEP_OVERDUE_HOURS = 0
    assert list(housekeeping.overdue_steps()) == []


def test_by_default_housekeeping_leaves_overdue_steps_alone(late, settings):
    settings.RIS_STEP_OVERDUE_ACTION = ""
    assert housekeeping.run() == 0
    late.refresh_from_db()
    assert late.status == StepStatus.SCHEDULED and late.off_worklist_at is None


def test_remove_takes_an_overdue_step_off_the_worklist_but_the_order_keeps_it(late, settings):
    settings.RIS_STEP_OVERDUE_ACTION = "REMOVE"
    settings.RIS_STEP_OVERDUE_ACTION_HOURS = 24
    assert late.sps_id in on_worklist()
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=1)
    jobs = OutboundJob.objects.count()

    assert housekeeping.run() == 1

    late.refresh_from_db()
    assert late.status == StepStatus.SCHEDULED and late.off_worklist_at is not None
    assert late.sps_id not in on_worklist()
    assert ScheduledProcedureStep.objects.filter(pk=late.pk).exists()  # never deleted
    assert OutboundJob.objects.count() == jobs  # no status changed: nothing to tell the HIS
    event = AuditEvent.objects.get(action="step.off_worklist")
    assert event.actor == "housekeeping" and "24 h after its scheduled end" in event.detail
    assert list(housekeeping.overdue_steps()) == []  # handled: no longer counted


def test_booking_a_removed_step_again_puts_it_back_on_the_worklist(late, settings):
    settings.RIS_STEP_OVERDUE_ACTION = "REMOVE"
    housekeeping.run()
    services.step_schedule(step=late, start=at(23, 30), actor=Actor.system("desk"))
    assert late.sps_id in on_worklist()


def test_a_status_chosen_by_the_site_is_set_through_the_state_machine_and_the_his_told(
    late, settings
):
    settings.RIS_STEP_OVERDUE_ACTION = "CANCELED"
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=1)

    assert housekeeping.run() == 1

    late.refresh_from_db()
    assert late.status == StepStatus.CANCELED
    job = OutboundJob.objects.get()
    assert (job.payload["order_control"], job.payload["order_status"]) == ("OC", "CA")
    assert AuditEvent.objects.filter(action="step.canceled", actor="housekeeping").exists()


def test_a_step_not_yet_overdue_long_enough_is_not_acted_on(ct1, settings):
    settings.RIS_STEP_OVERDUE_ACTION = "REMOVE"
    settings.RIS_STEP_OVERDUE_ACTION_HOURS = 24
    step = first_step(make_order(station=ct1, start=timezone.now() - dt.timedelta(hours=5)))
    assert housekeeping.run() == 0
    assert step.sps_id in on_worklist()


def test_an_impossible_status_is_logged_once_and_changes_nothing(late, settings, caplog):
    settings.RIS_STEP_OVERDUE_ACTION = "COMPLETED"
    with caplog.at_level("ERROR", logger="worklist.housekeeping"):
        assert housekeeping.run() == 0
    assert len(caplog.records) == 1
    late.refresh_from_db()
    assert late.status == StepStatus.SCHEDULED


def finish(step) -> None:
    services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.ae("CT1"))
    services.step_transition(step=step, to=StepStatus.COMPLETED, actor=Actor.ae("CT1"))


def test_by_default_a_finished_step_leaves_the_worklist_at_once(ct1, settings):
    settings.RIS_MWL_KEEP_FINISHED_MINUTES = 0
    step = first_step(make_order(station=ct1, start=at(9)))
    finish(step)
    assert step.sps_id not in on_worklist()


def test_a_finished_step_stays_on_the_worklist_for_the_set_delay_then_leaves(ct1, settings):
    settings.RIS_MWL_KEEP_FINISHED_MINUTES = 30
    step = first_step(make_order(station=ct1, start=at(9)))
    finish(step)
    assert step.sps_id in on_worklist()

    ScheduledProcedureStep.objects.filter(pk=step.pk).update(
        updated_at=timezone.now() - dt.timedelta(minutes=31)
    )
    assert step.sps_id not in on_worklist()
