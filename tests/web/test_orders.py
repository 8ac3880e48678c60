"""Orders from the web: created from the catalogue, edited, cancelled with a reason."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from ris.roles import Role
from tests.factories import DeviceFactory, PatientFactory, at, first_step, make_order
from worklist.models import Modality, Order, OrderStatus, StepStatus

TOMORROW = dt.date.today() + dt.timedelta(days=1)


def test_an_order_without_a_slot_waits_unscheduled(desk, ct_head):
    patient = PatientFactory()
    response = desk.post(
        f"{reverse('web:order_create')}?patient={patient.pk}",
        {"procedure_type": ct_head.pk, "priority": "ROUTINE", "reason": "headache"},
    )
    order = Order.objects.get(patient=patient)
    assert response.status_code == 302
    assert response["Location"] == reverse("web:order_detail", kwargs={"pk": order.pk})
    assert order.accession_number and order.reason == "headache"
    step = first_step(order)
    assert step.status == StepStatus.UNSCHEDULED
    assert order.procedures.get().study_instance_uid


def test_an_order_with_a_slot_is_scheduled_on_that_station(desk, ct_head, ct1):
    patient = PatientFactory()
    desk.post(
        f"{reverse('web:order_create')}?patient={patient.pk}",
        {"procedure_type": ct_head.pk, "priority": "STAT", "station": ct1.pk,
         "date": TOMORROW.isoformat(), "time": "10:00"},
    )
    step = first_step(Order.objects.get(patient=patient))
    assert step.status == StepStatus.SCHEDULED
    assert step.station == ct1
    assert step.scheduled_start == at(10, day=TOMORROW)


def test_a_station_of_another_modality_is_refused(desk, ct_head):
    mr = DeviceFactory(ae_title="MR1", modality=Modality.MR)
    patient = PatientFactory()
    response = desk.post(
        f"{reverse('web:order_create')}?patient={patient.pk}",
        {"procedure_type": ct_head.pk, "priority": "ROUTINE", "station": mr.pk,
         "date": "2030-01-02", "time": "10:00"},
    )
    assert response.status_code == 200
    assert "station" in response.context["form"].errors
    assert not Order.objects.exists()


def test_a_date_without_a_time_is_refused(desk, ct_head):
    patient = PatientFactory()
    response = desk.post(
        f"{reverse('web:order_create')}?patient={patient.pk}",
        {"procedure_type": ct_head.pk, "priority": "ROUTINE", "date": "2030-01-02"},
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert not Order.objects.exists()


def test_an_unknown_procedure_is_a_field_error(desk):
    patient = PatientFactory()
    response = desk.post(
        f"{reverse('web:order_create')}?patient={patient.pk}",
        {"procedure_type": "999999", "priority": "ROUTINE"},
    )
    assert response.status_code == 200
    assert "procedure_type" in response.context["form"].errors


def test_new_order_without_a_patient_goes_to_patient_search(desk):
    response = desk.get(reverse("web:order_create"))
    assert response["Location"] == reverse("web:patient_list")
    assert desk.get(f"{reverse('web:order_create')}?patient=abc").status_code == 302
    assert desk.get(f"{reverse('web:order_create')}?patient=424242").status_code == 404


def test_editing_an_order_goes_through_the_service_and_is_audited(desk, ct_head):
    order = make_order(procedure_type=ct_head)
    response = desk.post(
        reverse("web:order_edit", kwargs={"pk": order.pk}),
        {"priority": "HIGH", "referring_physician": "Zhou^Min", "reason": "fall",
         "requesting_physician": "", "comments": "wheelchair"},
    )
    order.refresh_from_db()
    assert response.status_code == 302
    assert (order.priority, order.referring_physician, order.comments) == (
        "HIGH", "Zhou^Min", "wheelchair")
    detail = desk.get(reverse("web:order_detail", kwargs={"pk": order.pk})).content.decode()
    assert "Order details changed." in detail and "order.update" not in detail


def test_a_cancelled_order_cannot_be_edited(desk, ct_head):
    order = make_order(procedure_type=ct_head)
    desk.post(reverse("web:order_cancel", kwargs={"pk": order.pk}), {"reason": "duplicate"})
    response = desk.post(
        reverse("web:order_edit", kwargs={"pk": order.pk}), {"priority": "HIGH"}
    )
    assert response.status_code == 200
    assert "can no longer be changed" in str(response.context["form"].non_field_errors())


def test_cancelling_an_order_needs_a_coded_reason_and_cancels_its_steps(desk, ct_head, ct1):
    order = make_order(procedure_type=ct_head, station=ct1, start=at(11))
    url = reverse("web:order_cancel", kwargs={"pk": order.pk})
    refused = desk.post(url, {"reason": ""})
    assert refused.status_code == 200 and "reason" in refused.context["form"].errors
    invented = desk.post(url, {"reason": "because"})
    assert invented.status_code == 200 and "reason" in invented.context["form"].errors
    assert first_step(order).status == StepStatus.SCHEDULED
    desk.post(url, {"reason": "patient_request"})
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELED
    assert first_step(order).status == StepStatus.CANCELED
    assert first_step(order).status_reason == "cancel:patient_request"


def test_the_cancel_page_offers_the_sites_reasons_only(desk, ct_head, settings):
    settings.RIS_CANCEL_REASONS = ["duplicate", "other"]
    order = make_order(procedure_type=ct_head)
    page = desk.get(reverse("web:order_cancel", kwargs={"pk": order.pk})).content.decode()
    assert 'value="duplicate"' in page and 'value="other"' in page
    assert 'value="patient_request"' not in page


def test_a_cancel_is_undone_from_the_order_page_the_same_day(desk, ct_head, ct1):
    order = make_order(procedure_type=ct_head, station=ct1, start=at(11))
    desk.post(reverse("web:order_cancel", kwargs={"pk": order.pk}), {"reason": "duplicate"})
    detail = desk.get(reverse("web:order_detail", kwargs={"pk": order.pk})).content.decode()
    undo = reverse("web:order_cancel_undo", kwargs={"pk": order.pk})
    assert undo in detail and "Cancelled: Duplicate order" in detail
    response = desk.post(undo, follow=True)
    order.refresh_from_db()
    assert order.status == OrderStatus.SCHEDULED
    assert first_step(order).status == StepStatus.SCHEDULED
    text = response.content.decode()
    assert "Cancel undone" in text and "Undone: the exam is scheduled again." in text
    assert undo not in text


def test_undoing_a_cancel_needs_the_role_that_cancels(client_as, ct_head, ct1):
    order = make_order(procedure_type=ct_head, station=ct1, start=at(11))
    client_as(Role.FRONT_DESK).post(
        reverse("web:order_cancel", kwargs={"pk": order.pk}), {"reason": "duplicate"}
    )
    undo = reverse("web:order_cancel_undo", kwargs={"pk": order.pk})
    assert client_as(Role.TECHNOLOGIST).post(undo).status_code == 403
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELED


def test_a_cancel_without_undo_answers_in_chinese(client_as, ct_head, ct1):
    from worklist import services
    from worklist.audit import Actor

    order = make_order(procedure_type=ct_head, station=ct1, start=at(11))
    services.order_cancel(order=order, actor=Actor.hl7("HIS"), reason="CA from the HIS")
    desk = client_as(Role.FRONT_DESK)
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = desk.get(reverse("web:order_detail", kwargs={"pk": order.pk})).content.decode()
    assert reverse("web:order_cancel_undo", kwargs={"pk": order.pk}) not in page
    page = desk.post(reverse("web:order_cancel_undo", kwargs={"pk": order.pk}), follow=True)
    text = page.content.decode()
    assert "今天没有可撤销的操作" in text and "nothing" not in text
    order.refresh_from_db()
    assert order.status == OrderStatus.CANCELED


def test_an_order_with_a_started_step_cannot_be_cancelled(desk, ct_head, ct1):
    from worklist import services
    from worklist.audit import Actor

    order = make_order(procedure_type=ct_head, station=ct1, start=at(11))
    services.step_transition(step=first_step(order), to=StepStatus.STARTED,
                             actor=Actor.ae("CT1"))
    response = desk.post(reverse("web:order_cancel", kwargs={"pk": order.pk}),
                         {"reason": "other"})
    assert response.status_code == 200
    assert "already started" in str(response.context["form"].non_field_errors())
    assert first_step(order).status == StepStatus.STARTED


def test_order_page_shows_steps_and_audit_trail(client_as, ct_head, ct1):
    order = make_order(procedure_type=ct_head, station=ct1, start=at(11))
    page = client_as(Role.RADIOLOGIST).get(reverse("web:order_detail", kwargs={"pk": order.pk}))
    text = page.content.decode()
    assert first_step(order).sps_id in text
    assert "Order created." in text and "Exam created (scheduled)." in text
    assert "step.create" not in text and ">SCHEDULED<" not in text
    # A radiologist reads: no booking or cancel buttons.
    assert reverse("web:order_cancel", kwargs={"pk": order.pk}) not in text
