"""Check-in from the day list: arrived, ready and no-show, each through the state machine."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ris.roles import Role
from tests.factories import at, first_step, make_order
from worklist.models import StepStatus


@pytest.fixture
def step(ct_head, ct1):
    return first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9)))


@pytest.mark.parametrize(
    ("action", "status"),
    [("arrived", StepStatus.ARRIVED), ("ready", StepStatus.READY)],
)
def test_check_in_actions_move_the_step(client_as, step, action, status):
    client = client_as(Role.TECHNOLOGIST)
    response = client.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": action})
    step.refresh_from_db()
    assert response.status_code == 302
    assert step.status == status


def test_no_show_asks_first_and_changes_nothing_until_confirmed(desk, step):
    response = desk.get(reverse("web:no_show", kwargs={"pk": step.pk}), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED
    assert "Confirm no-show" in html and 'name="reason"' in html
    assert html.lstrip().startswith(f'<tr id="step-{step.pk}"')


def test_a_no_show_posted_without_the_old_one_click_action_is_refused(desk, step):
    desk.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "no_show"})
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED


def test_a_confirmed_no_show_cancels_with_the_coded_reason(desk, step):
    response = desk.post(
        reverse("web:no_show", kwargs={"pk": step.pk}), {"reason": "not_prepared"},
        HTTP_HX_REQUEST="true",
    )
    step.refresh_from_db()
    assert step.status == StepStatus.CANCELED
    assert step.status_reason == "no-show:not_prepared"
    html = response.content.decode()
    assert "Preparation not done" in html
    assert 'value="undo"' in html


def test_a_no_show_reason_outside_the_site_list_is_refused(desk, step, settings):
    settings.RIS_NO_SHOW_REASONS = ["did_not_come", "other"]
    response = desk.post(reverse("web:no_show", kwargs={"pk": step.pk}), {"reason": "unwell"})
    step.refresh_from_db()
    assert response.status_code == 200
    assert "reason" in response.context["form"].errors
    assert step.status == StepStatus.SCHEDULED


def test_undo_takes_a_no_show_back_to_scheduled_and_is_audited(desk, step):
    from worklist.models import AuditEvent, OrderStatus

    desk.post(reverse("web:no_show", kwargs={"pk": step.pk}), {"reason": "did_not_come"})
    response = desk.post(reverse("web:undo", kwargs={"pk": step.pk}), follow=True)
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED
    assert step.status_reason == ""
    assert step.requested_procedure.order.status == OrderStatus.SCHEDULED
    assert AuditEvent.objects.filter(action="step.undo", detail="step.canceled").exists()
    assert "Undone" in response.content.decode()


@pytest.mark.parametrize(("actions", "back_to"), [
    (["arrived"], StepStatus.SCHEDULED),
    (["arrived", "ready"], StepStatus.ARRIVED),
])
def test_undo_takes_a_check_in_back_one_step(desk, step, actions, back_to):
    for action in actions:
        desk.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": action})
    desk.post(reverse("web:undo", kwargs={"pk": step.pk}))
    step.refresh_from_db()
    assert step.status == back_to


def test_undo_after_the_modality_started_the_exam_is_refused_in_words(desk, step):
    from worklist import services
    from worklist.audit import Actor

    desk.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "arrived"})
    services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.ae("CT1"))
    response = desk.post(reverse("web:undo", kwargs={"pk": step.pk}), HTTP_HX_REQUEST="true")
    step.refresh_from_db()
    assert step.status == StepStatus.STARTED
    assert "nothing of today to undo" in response.content.decode() or (
        "no check-in or no-show" in response.content.decode()
    )


def test_htmx_check_in_answers_with_the_updated_row(desk, step):
    response = desk.post(
        reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "arrived"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="step-{step.pk}"')
    assert "Arrived" in html
    assert 'value="arrived"' not in html  # already arrived: the button is gone


def test_checking_in_a_completed_step_is_refused_and_changes_nothing(desk, step):
    from worklist import services
    from worklist.audit import Actor

    for status in (StepStatus.STARTED, StepStatus.COMPLETED):
        services.step_transition(step=step, to=status, actor=Actor.ae("CT1"))
    response = desk.post(
        reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "arrived"},
        HTTP_HX_REQUEST="true",
    )
    step.refresh_from_db()
    assert response.status_code == 200
    html = response.content.decode()
    assert "This exam is already completed, so it cannot become arrived" in html
    assert 'value="arrived"' not in html  # the row is reloaded: no stale button
    assert step.status == StepStatus.COMPLETED


def test_an_unknown_action_is_refused(desk, step):
    response = desk.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "teleport"},
                         follow=True)
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED
    assert "Unknown check-in action" in response.content.decode()


def test_check_in_is_post_only(desk, step):
    assert desk.get(reverse("web:checkin", kwargs={"pk": step.pk})).status_code == 405


def test_day_list_offers_the_buttons_the_state_allows(desk, step):
    response = desk.get(reverse("web:day_list"))
    assert response.context["rows"] == [(step, ["arrived", "ready", "no_show"])]


def test_a_stale_click_in_chinese_gets_a_chinese_message(desk, step):
    from worklist import services
    from worklist.audit import Actor

    for status in (StepStatus.STARTED, StepStatus.COMPLETED):
        services.step_transition(step=step, to=status, actor=Actor.ae("CT1"))
    response = desk.post(
        reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "arrived"},
        HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    html = response.content.decode()
    assert "cannot" not in html and "already" not in html
    assert "已完成" in html


def test_board_shows_the_modality_worklist_and_polls(client_as, step):
    client = client_as(Role.TECHNOLOGIST)
    page = client.get(reverse("web:board_modality", kwargs={"modality": "CT"}))
    assert 'hx-trigger="every 5s"' in page.content.decode()
    assert page.context["steps"] == [step]
    partial = client.get(reverse("web:board_modality", kwargs={"modality": "CT"}),
                         HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content
    assert step.requested_procedure.order.accession_number in partial.content.decode()


def test_board_of_an_unknown_modality_is_404(desk, step):
    assert desk.get(reverse("web:board_modality", kwargs={"modality": "ZZ"})).status_code == 404
    # a real modality without any active station is unknown to the board as well
    assert desk.get(reverse("web:board_modality", kwargs={"modality": "MR"})).status_code == 404


def test_board_opens_on_the_first_modality_with_work_today(desk, step):
    from tests.factories import DeviceFactory
    from worklist.models import Modality

    DeviceFactory(ae_title="CR1", modality=Modality.CR)  # alphabetically first, but idle
    response = desk.get(reverse("web:board"))
    assert response.context["modality"] == "CT"


def test_board_reopens_on_the_modality_shown_last(desk, step):
    from tests.factories import DeviceFactory
    from worklist.models import Modality

    DeviceFactory(ae_title="US1", modality=Modality.US)
    desk.get(reverse("web:board_modality", kwargs={"modality": "US"}))
    assert desk.get(reverse("web:board")).context["modality"] == "US"


def test_the_boards_modality_is_remembered_per_user_on_the_server(client_as, step):
    """Not a cookie: the same user on another workstation (a new browser session) opens on
    their modality, and another user is not affected."""
    from django.test import Client

    from ris.models import UserPreference
    from tests.factories import DeviceFactory
    from worklist.models import Modality

    DeviceFactory(ae_title="US1", modality=Modality.US)
    technologist = client_as(Role.TECHNOLOGIST)
    technologist.get(reverse("web:board_modality", kwargs={"modality": "US"}))
    user = UserPreference.objects.get(board_modality="US").user
    other_workstation = Client()
    other_workstation.force_login(user)
    assert "ris_board_modality" not in other_workstation.cookies
    assert other_workstation.get(reverse("web:board")).context["modality"] == "US"
    assert client_as(Role.FRONT_DESK).get(reverse("web:board")).context["modality"] == "CT"


def test_an_unknown_modality_is_not_remembered(desk, step):
    from ris.models import UserPreference

    desk.get(reverse("web:board_modality", kwargs={"modality": "CT"}))
    assert desk.get(reverse("web:board_modality", kwargs={"modality": "ZZ"})).status_code == 404
    assert list(UserPreference.objects.values_list("board_modality", flat=True)) == ["CT"]
