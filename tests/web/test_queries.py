"""The pages' query counts do not grow with the number of rows they show."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import DeviceFactory, PatientFactory, at, first_step, make_order
from worklist.models import Modality


def _queries(client, url: str, params: dict | None = None) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(captured.captured_queries)


def _book(n: int, ct_head, stations, patient=None, *, offset: int = 0) -> list:
    orders = []
    for i in range(offset, offset + n):
        station = stations[i % len(stations)]
        start = at(8) + dt.timedelta(minutes=30 * (i // len(stations)))
        orders.append(make_order(procedure_type=ct_head, station=station, start=start,
                                 patient=patient or PatientFactory(name_ideographic="王^小东")))
    return orders


@pytest.fixture
def stations(ct1, ct2):
    return [ct1, ct2, DeviceFactory(ae_title="CT3", modality=Modality.CT)]


PAGES = [
    ("web:dashboard", {}),
    ("web:calendar", {}),
    ("web:calendar", {"view": "week"}),
    ("web:day_list", {}),
    ("web:board", {"modality": "CT"}),
    ("web:patient_list", {"q": "王小东"}),
]


@pytest.mark.parametrize(("name", "params"), PAGES, ids=[f"{n}{p}" for n, p in PAGES])
def test_query_count_does_not_grow_with_rows(desk, ct_head, stations, name, params):
    _book(3, ct_head, stations)
    few = _queries(desk, reverse(name), params)
    _book(18, ct_head, stations, offset=3)
    many = _queries(desk, reverse(name), params)
    assert many == few


def test_dashboard_needs_a_handful_of_queries(
    desk, ct_head, stations, django_assert_max_num_queries
):
    _book(12, ct_head, stations)
    desk.get(reverse("web:dashboard"))  # session and user warmed up like any later request
    with django_assert_max_num_queries(8):
        desk.get(reverse("web:dashboard"))


def test_order_and_patient_pages_do_not_grow_with_history(desk, ct_head, stations):
    patient = PatientFactory()
    orders = _book(2, ct_head, stations, patient=patient)
    order_url = reverse("web:order_detail", kwargs={"pk": orders[0].pk})
    patient_url = reverse("web:patient_detail", kwargs={"pk": patient.pk})
    few = (_queries(desk, order_url), _queries(desk, patient_url))
    _book(10, ct_head, stations, patient=patient, offset=2)
    from worklist import services
    from worklist.audit import Actor

    step = first_step(orders[0])
    services.step_transition(step=step, to="ARRIVED", actor=Actor.system())
    services.step_transition(step=step, to="READY", actor=Actor.system())
    assert (_queries(desk, order_url), _queries(desk, patient_url)) == few
