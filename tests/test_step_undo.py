"""No-show and check-in, and taking them back the same day (``services.step_undo``)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User

from ris.models import HL7Destination, OutboundJob
from tests.factories import DeviceFactory, ProcedureTypeFactory, at, first_step, make_order
from worklist import services
from worklist.audit import Actor
from worklist.errors import DomainError, ErrorCode, InvalidTransition, ScheduleConflict
from worklist.models import AuditEvent, Modality, Order, OrderStatus, StepStatus
from worklist.states import check_undo_transition

pytestmark = pytest.mark.django_db
TOMORROW = dt.date.today() + dt.timedelta(days=1)


@pytest.fixture
def desk():
    return Actor.for_user(User.objects.create_user("desk1"))


@pytest.fixture
def step():
    station = DeviceFactory(ae_title="CT1", modality=Modality.CT)
    ptype = ProcedureTypeFactory(modality=Modality.CT, default_duration_minutes=20)
    ptype.stations.add(station)
    return first_step(make_order(procedure_type=ptype, station=station, start=at(9, day=TOMORROW)))


def test_a_no_show_stores_its_coded_reason_and_cancels_the_order(step, desk):
    step = services.step_no_show(step=step, actor=desk, reason_code="unwell")
    assert step.status == StepStatus.CANCELED
    assert step.status_reason == "no-show:unwell"
    assert Order.objects.get(pk=step.requested_procedure.order_id).status == OrderStatus.CANCELED


def test_undoing_a_no_show_restores_the_slot_and_tells_the_his(step, desk):
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=9)
    services.step_no_show(step=step, actor=desk, reason_code="did_not_come")
    queued = OutboundJob.objects.filter(kind="hl7.order_status").count()
    step = services.step_undo(step=step, actor=desk)
    assert step.status == StepStatus.SCHEDULED and step.status_reason == ""
    assert Order.objects.get(pk=step.requested_procedure.order_id).status == OrderStatus.SCHEDULED
    assert OutboundJob.objects.filter(kind="hl7.order_status").count() == queued + 1
    event = AuditEvent.objects.get(action="step.undo")
    assert (event.before["status"], event.after["status"]) == ("CANCELED", "SCHEDULED")


def test_a_no_show_is_not_undone_when_its_slot_was_given_away(step, desk):
    services.step_no_show(step=step, actor=desk)
    make_order(procedure_type=step.requested_procedure.procedure_type, station=step.station,
               start=step.scheduled_start)
    with pytest.raises(ScheduleConflict):
        services.step_undo(step=step, actor=desk)
    step.refresh_from_db()
    assert step.status == StepStatus.CANCELED


def test_undo_goes_back_exactly_one_check_in_step(step, desk):
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=desk)
    services.step_transition(step=step, to=StepStatus.READY, actor=desk)
    assert services.step_undo(step=step, actor=desk).status == StepStatus.ARRIVED


def test_an_order_cancel_is_not_undoable(step, desk):
    services.order_cancel(order=step.requested_procedure.order, actor=desk, reason="wrong order")
    with pytest.raises(DomainError) as refused:
        services.step_undo(step=step, actor=desk)
    assert refused.value.code == ErrorCode.NOTHING_TO_UNDO


def test_what_the_modality_did_is_not_undone_by_the_desk(step, desk):
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=Actor.ae("CT1"))
    with pytest.raises(DomainError):
        services.step_undo(step=step, actor=desk)


def test_yesterdays_check_in_is_not_undoable(step, desk):
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=desk)
    AuditEvent.objects.filter(action="step.arrived").update(
        at=AuditEvent.objects.get(action="step.arrived").at - dt.timedelta(days=1)
    )
    with pytest.raises(DomainError):
        services.step_undo(step=step, actor=desk)


def test_an_undo_cannot_itself_be_undone(step, desk):
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=desk)
    services.step_undo(step=step, actor=desk)
    with pytest.raises(DomainError):
        services.step_undo(step=step, actor=desk)


@pytest.mark.parametrize(("current", "previous"), [
    (StepStatus.COMPLETED, StepStatus.STARTED),
    (StepStatus.STARTED, StepStatus.READY),
    (StepStatus.CANCELED, StepStatus.STARTED),
    (StepStatus.DISCONTINUED, StepStatus.STARTED),
])
def test_the_state_machine_refuses_undo_out_of_performed_states(current, previous):
    with pytest.raises(InvalidTransition):
        check_undo_transition(current, previous)


def test_booking_in_the_past_is_refused_only_when_asked(step, desk):
    past = at(9, day=TOMORROW) - dt.timedelta(days=3)
    with pytest.raises(DomainError) as refused:
        services.step_schedule(step=step, start=past, actor=desk, refuse_past=True)
    assert refused.value.code == ErrorCode.IN_THE_PAST
    # the HIS may report an exam that already happened
    assert services.step_schedule(step=step, start=past, actor=desk).scheduled_start == past


def test_a_desk_cancel_with_a_coded_reason_is_undone_and_tells_the_his(step, desk):
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=9)
    order = services.order_cancel(
        order=step.requested_procedure.order, actor=desk, reason_code="duplicate"
    )
    assert order.status_reason == "cancel:duplicate" and services.order_cancel_undoable(order)
    queued = OutboundJob.objects.filter(kind="hl7.order_status").count()
    order = services.order_cancel_undo(order=order, actor=desk)
    assert order.status == OrderStatus.SCHEDULED
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED and step.status_reason == ""
    assert OutboundJob.objects.filter(kind="hl7.order_status").count() == queued + 1
    event = AuditEvent.objects.get(action="step.undo")
    assert (event.before["status"], event.after["status"], event.detail) == (
        "CANCELED", "SCHEDULED", "step.canceled")


def test_a_desk_cancel_brings_a_waiting_exam_back_waiting(desk):
    ptype = ProcedureTypeFactory(modality=Modality.CT)
    order = make_order(procedure_type=ptype)
    services.order_cancel(order=order, actor=desk, reason_code="patient_request")
    services.order_cancel_undo(order=order, actor=desk)
    assert first_step(order).status == StepStatus.UNSCHEDULED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.SCHEDULED


def test_a_single_step_of_a_cancelled_order_is_not_undone_alone(step, desk):
    services.order_cancel(order=step.requested_procedure.order, actor=desk, reason_code="other")
    with pytest.raises(DomainError) as refused:
        services.step_undo(step=step, actor=desk)
    assert refused.value.code == ErrorCode.NOTHING_TO_UNDO


@pytest.mark.parametrize("how", ["his", "free text", "yesterday"])
def test_a_cancel_by_the_his_in_free_text_or_of_another_day_stays(step, desk, how):
    order = step.requested_procedure.order
    if how == "his":
        services.order_cancel(order=order, actor=Actor.hl7("HIS"), reason="CA")
    elif how == "free text":
        services.order_cancel(order=order, actor=desk, reason="wrong order")
    else:
        services.order_cancel(order=order, actor=desk, reason_code="duplicate")
        AuditEvent.objects.filter(action="step.canceled").update(
            at=AuditEvent.objects.get(action="step.canceled").at - dt.timedelta(days=1)
        )
    with pytest.raises(DomainError) as refused:
        services.order_cancel_undo(order=Order.objects.get(pk=order.pk), actor=desk)
    assert refused.value.code == ErrorCode.NOTHING_TO_UNDO
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELED


def test_a_cancel_is_not_undone_when_a_slot_was_given_away(step, desk):
    order = services.order_cancel(
        order=step.requested_procedure.order, actor=desk, reason_code="duplicate"
    )
    make_order(procedure_type=step.requested_procedure.procedure_type, station=step.station,
               start=step.scheduled_start)
    with pytest.raises(ScheduleConflict):
        services.order_cancel_undo(order=order, actor=desk)
    step.refresh_from_db()
    assert step.status == StepStatus.CANCELED


def test_an_order_back_from_a_cancel_reaches_the_swf_b_receivers_again_as_new(step, desk):
    HL7Destination.objects.create(name="IM", host="127.0.0.1", port=9, swf_b_omi=True)
    order = services.order_cancel(
        order=step.requested_procedure.order, actor=desk, reason_code="duplicate"
    )
    services.order_cancel_undo(order=order, actor=desk)
    controls = [job.payload["order_control"]
                for job in OutboundJob.objects.filter(destination="IM").order_by("pk")]
    assert controls[-2:] == ["CA", "NW"]
