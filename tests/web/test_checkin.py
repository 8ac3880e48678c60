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
    [("arrived", StepStatus.ARRIVED), ("ready", StepStatus.READY),
     ("no_show", StepStatus.CANCELED)],
)
def test_check_in_actions_move_the_step(client_as, step, action, status):
    client = client_as(Role.TECHNOLOGIST)
    response = client.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": action})
    step.refresh_from_db()
    assert response.status_code == 302
    assert step.status == status


def test_no_show_records_the_reason(desk, step):
    desk.post(reverse("web:checkin", kwargs={"pk": step.pk}), {"action": "no_show"})
    step.refresh_from_db()
    assert step.status_reason == "no-show"


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
    assert "cannot become arrived" in response.content.decode()
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


def test_board_shows_the_modality_worklist_and_polls(client_as, step):
    client = client_as(Role.TECHNOLOGIST)
    page = client.get(reverse("web:board_modality", kwargs={"modality": "CT"}))
    assert 'hx-trigger="every 5s"' in page.content.decode()
    assert page.context["steps"] == [step]
    partial = client.get(reverse("web:board_modality", kwargs={"modality": "CT"}),
                         HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content
    assert step.requested_procedure.order.accession_number in partial.content.decode()


def test_board_of_an_unknown_modality_is_empty_not_an_error(desk, step):
    response = desk.get(reverse("web:board_modality", kwargs={"modality": "ZZ"}))
    assert response.status_code == 200
    assert response.context["steps"] == []
