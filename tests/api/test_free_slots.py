"""GET /api/v1/steps/{id}/free-slots/: the next-free-slot search, bookable with POST schedule."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import DeviceFactory, ProcedureTypeFactory, first_step, make_order
from worklist.models import Modality, OpeningPeriod, StepStatus

pytestmark = pytest.mark.django_db
MONDAY = dt.date.today() + dt.timedelta(days=7 - dt.date.today().weekday() + 7)


@pytest.fixture
def step():
    ct = DeviceFactory(ae_title="CT1", modality=Modality.CT)
    for weekday in range(5):
        OpeningPeriod.objects.create(station=ct, weekday=weekday, opens_at=dt.time(8),
                                     closes_at=dt.time(16))
    ptype = ProcedureTypeFactory(modality=Modality.CT, default_duration_minutes=20)
    ptype.stations.add(ct)
    return first_step(make_order(procedure_type=ptype))


def test_free_slots_are_listed_and_one_is_booked_through_schedule(desk, step):
    after = f"{MONDAY.isoformat()}T00:00:00Z"
    response = desk.get(f"/api/v1/steps/{step.pk}/free-slots/", {"limit": 3, "after": after})
    assert response.status_code == 200
    slots = response.json()
    assert len(slots) == 3
    assert slots[0]["station_ae_title"] == "CT1" and slots[0]["reserved"] == ""
    booked = desk.post(
        f"/api/v1/steps/{step.pk}/schedule/",
        {"start": slots[0]["start"], "station": slots[0]["station"]},
        format="json",
    )
    assert booked.status_code == 200, booked.json()
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED
    assert step.station.ae_title == "CT1"


def test_a_bad_limit_is_a_400(desk, step):
    assert desk.get(f"/api/v1/steps/{step.pk}/free-slots/", {"limit": 0}).status_code == 400
