"""/api/v1/audit-events/: the trail, read by admins, filtered by object and action."""

from __future__ import annotations

import pytest

from tests.factories import first_step, make_order

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit-events/"


def test_admin_reads_the_history_of_one_step(admin, desk):
    step = first_step(make_order())
    desk.post(f"/api/v1/steps/{step.pk}/cancel/", {"reason": "duplicate"}, format="json")
    rows = admin.get(
        URL, {"object_type": "worklist.ScheduledProcedureStep", "object_id": step.pk}
    ).json()["results"]
    assert [row["action"] for row in rows] == ["step.canceled", "step.create"]
    cancelled = rows[0]
    assert cancelled["before"]["status"] == "UNSCHEDULED"
    assert cancelled["after"]["status"] == "CANCELED"
    assert cancelled["detail"] == "duplicate"
    assert cancelled["actor_type"] == "USER"
    assert cancelled["user"] == cancelled["actor"]


def test_audit_events_are_filtered_by_action(admin):
    make_order()
    rows = admin.get(URL, {"action": "order.create"}).json()["results"]
    assert [row["action"] for row in rows] == ["order.create"]


@pytest.mark.parametrize("role", ["desk", "technologist", "radiologist"])
def test_only_admins_read_the_audit_trail(request, role):
    assert request.getfixturevalue(role).get(URL).status_code == 403


def test_the_audit_trail_cannot_be_written(admin):
    assert admin.post(URL, {"action": "forged"}, format="json").status_code == 405
