"""Images at the PACS on the pages staff look at: the order's steps, the board and the day list.

The counts are recorded by the forwarding domain (``record_availability`` after a C-FIND, the
storage gateway's ``receive_instance``); these tests record them through those services and read
the pages with the test client.
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from mpps.forwarding import services as forwarding
from mpps.forwarding.models import PacsDestination
from ris.roles import Role
from tests.factories import at, first_step, make_order
from tests.forwarding.instances import ct_study
from worklist import services
from worklist.audit import Actor
from worklist.models import StepStatus


def _start(step):
    return services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.ae("CT1"))


def _order_page(client, step) -> str:
    order_id = step.requested_procedure.order_id
    return client.get(reverse("web:order_detail", kwargs={"pk": order_id})).content.decode()


@pytest.fixture
def step(ct1, ct_head):
    return first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9)))


@pytest.fixture
def spool(settings, tmp_path):
    settings.RIS_FORWARD_SPOOL_DIR = tmp_path / "spool"
    return settings.RIS_FORWARD_SPOOL_DIR


def test_order_page_shows_images_at_pacs_with_their_counts_and_confirmation_time(client_as, step):
    step = _start(step)
    images = forwarding.record_availability(
        step=step, destination="orthanc", series=2, instances=120
    )
    page = _order_page(client_as(Role.FRONT_DESK), step)
    confirmed = timezone.localtime(images.pacs_confirmed_at)
    assert "Images at PACS: 2 series / 120 instances" in page
    assert f"(confirmed {confirmed:%Y-%m-%d %H:%M})" in page
    assert "not yet at PACS" not in page


def test_order_page_says_not_yet_at_pacs_for_a_started_step_the_pacs_does_not_hold(client_as, step):
    step = _start(step)
    forwarding.record_not_found(step=step)
    page = _order_page(client_as(Role.TECHNOLOGIST), step)
    assert "not yet at PACS" in page
    assert "Images at PACS" not in page


def test_a_step_not_yet_performed_has_no_pacs_status(client_as, step):
    page = _order_page(client_as(Role.FRONT_DESK), step)
    assert "not yet at PACS" not in page
    assert "Images at PACS" not in page


def test_order_page_shows_what_the_gateway_received_and_its_deliveries(client_as, step, spool):
    PacsDestination.objects.create(name="orthanc", ae_title="ORTHANC", host="127.0.0.1", port=1)
    step = _start(step)
    procedure = step.requested_procedure
    for ds in ct_study(
        3,
        series=2,
        study_uid=procedure.study_instance_uid,
        accession=procedure.order.accession_number,
    ):
        forwarding.receive_instance(dataset=ds, file_meta=ds.file_meta, calling_ae_title="CT1")
    page = _order_page(client_as(Role.TECHNOLOGIST), step)
    assert "Received by the gateway: 2 series / 3 instances" in page
    assert "to send 3" in page  # three deliveries waiting for the PACS
    assert "not yet at PACS" in page


def test_board_marks_the_steps_whose_images_are_at_the_pacs(client_as, step, ct1, ct_head):
    waiting = first_step(make_order(procedure_type=ct_head, station=ct1, start=at(10)))
    forwarding.record_availability(
        step=_start(step), destination="orthanc", series=2, instances=120
    )
    page = (
        client_as(Role.TECHNOLOGIST).get(reverse("web:board"), {"modality": "CT"}).content.decode()
    )
    assert waiting.requested_procedure.order.accession_number in page
    assert page.count("PACS ✓") == 1
    assert "PACS ✓ 2/120" in page


def test_day_list_marks_the_steps_whose_images_are_at_the_pacs(client_as, step):
    forwarding.record_availability(step=_start(step), destination="orthanc", series=1, instances=30)
    page = client_as(Role.FRONT_DESK).get(reverse("web:day_list")).content.decode()
    assert "PACS ✓ 1/30" in page


def test_images_at_pacs_is_translated_to_chinese(desk, step):
    forwarding.record_availability(
        step=_start(step), destination="orthanc", series=2, instances=120
    )
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    assert "PACS 已有图像：2 个序列 / 120 个实例" in _order_page(desk, step)
