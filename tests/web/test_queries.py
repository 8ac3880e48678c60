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
    # The first visit may write once (the board remembers the user's modality): warm up.
    client.get(url, params or {})
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
    ("web:day_plan", {}),
    ("web:statistics", {}),
    ("web:schedule_exceptions", {}),
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


def _images_at_pacs(orders) -> None:
    """Every order's steps started and found at the PACS (what the availability job records)."""
    from mpps.forwarding import services as forwarding
    from worklist import services
    from worklist.audit import Actor

    for order in orders:
        for proc in order.procedures.all():
            for step in proc.steps.all():
                step = services.step_transition(step=step, to="STARTED", actor=Actor.ae("CT1"))
                forwarding.record_availability(
                    step=step, destination="orthanc", series=2, instances=120
                )


@pytest.mark.parametrize("name", ["web:day_list", "web:board"])
def test_pacs_markers_do_not_add_queries_per_step(desk, ct_head, stations, name):
    params = {"modality": "CT"} if name == "web:board" else {}
    _images_at_pacs(_book(3, ct_head, stations))
    few = _queries(desk, reverse(name), params)
    _images_at_pacs(_book(18, ct_head, stations, offset=3))
    many = _queries(desk, reverse(name), params)
    assert "PACS ✓ 2/120" in desk.get(reverse(name), params).content.decode()
    assert many == few


def test_order_page_with_images_does_not_grow_with_its_steps(desk, ct_head, stations):
    from worklist import services
    from worklist.audit import Actor
    from worklist.services import ProcedureRequest

    def order_of(n: int, station):
        return services.order_create(
            patient=PatientFactory(),
            procedures=[
                ProcedureRequest(ct_head, scheduled_start=at(8 + i), station=station)
                for i in range(n)
            ],
            actor=Actor.system("test"),
        )

    one, six = order_of(1, stations[1]), order_of(6, stations[2])
    _images_at_pacs([one, six])
    few = _queries(desk, reverse("web:order_detail", kwargs={"pk": one.pk}))
    many = _queries(desk, reverse("web:order_detail", kwargs={"pk": six.pk}))
    page = desk.get(reverse("web:order_detail", kwargs={"pk": six.pk})).content.decode()
    assert page.count("Images at PACS: 2 series / 120 instances") == 6
    assert many == few


def test_the_appointment_slip_does_not_grow_with_the_patients_history(desk, ct_head, stations):
    patient = PatientFactory()
    first = _book(1, ct_head, stations, patient=patient)[0]
    url = reverse("web:appointment_slip", kwargs={"pk": first_step(first).pk})
    few = _queries(desk, url)
    _book(10, ct_head, stations, patient=patient, offset=1)
    assert _queries(desk, url) == few


def test_the_cancel_page_needs_a_handful_of_queries(desk, ct_head, stations):
    small = _book(1, ct_head, stations)[0]
    assert _queries(desk, reverse("web:order_cancel", kwargs={"pk": small.pk})) <= 8
