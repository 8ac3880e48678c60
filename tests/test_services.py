"""Domain services: orders, scheduling, check-in, cancel, audit trail and emitted events."""

import datetime as dt

import pytest

from tests.factories import (
    DeviceFactory,
    PatientFactory,
    ProcedureTypeFactory,
    at,
    first_step,
    make_order,
)
from worklist import services, signals
from worklist.audit import Actor
from worklist.dicom import worklist_item
from worklist.errors import DomainError, Duplicate, InvalidTransition, ScheduleConflict
from worklist.models import AuditEvent, OrderStatus, Priority, StepStatus

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def test_order_with_start_time_is_scheduled_with_generated_identifiers():
    order = make_order(station=DeviceFactory(ae_title="CT1"), start=at(9))
    step = first_step(order)
    procedure = order.procedures.get()
    assert order.status == OrderStatus.SCHEDULED
    assert step.status == StepStatus.SCHEDULED
    assert step.scheduled_end - step.scheduled_start == dt.timedelta(minutes=15)
    assert len(order.accession_number) <= 16
    assert procedure.study_instance_uid.startswith("2.25.")
    assert len(procedure.study_instance_uid) <= 64
    assert step.sps_id and procedure.requested_procedure_id


def test_order_without_start_time_waits_unscheduled():
    step = first_step(make_order())
    assert step.status == StepStatus.UNSCHEDULED
    assert step.scheduled_start is None


def test_uid_root_setting_is_used(settings):
    settings.RIS_UID_ROOT = "1.2.826.0.1.3680043.10.999"
    uid = make_order().procedures.get().study_instance_uid
    assert uid.startswith("1.2.826.0.1.3680043.10.999.1.")


def test_booking_an_unscheduled_step_schedules_it():
    step = first_step(make_order())
    step = services.step_schedule(
        step=step, start=at(10), station=DeviceFactory(ae_title="MR1"), actor=ACTOR
    )
    assert step.status == StepStatus.SCHEDULED
    assert step.station.ae_title == "MR1"
    assert AuditEvent.objects.filter(action="step.book", object_id=str(step.pk)).exists()


def test_overlapping_booking_on_one_station_is_refused():
    station = DeviceFactory(ae_title="CT1")
    make_order(station=station, start=at(9))
    other = first_step(make_order())
    with pytest.raises(ScheduleConflict, match="CT1 is booked"):
        services.step_schedule(step=other, start=at(9, 10), station=station, actor=ACTOR)
    other.refresh_from_db()
    assert other.status == StepStatus.UNSCHEDULED


def test_back_to_back_booking_is_not_a_conflict():
    station = DeviceFactory(ae_title="CT1")
    make_order(station=station, start=at(9))
    other = first_step(make_order())
    services.step_schedule(step=other, start=at(9, 15), station=station, actor=ACTOR)


def test_overbooking_station_accepts_overlap():
    station = DeviceFactory(ae_title="CT1", allow_overbooking=True)
    make_order(station=station, start=at(9))
    other = first_step(make_order())
    services.step_schedule(step=other, start=at(9), station=station, actor=ACTOR)


def test_a_cancelled_step_frees_its_slot():
    station = DeviceFactory(ae_title="CT1")
    first = make_order(station=station, start=at(9))
    services.order_cancel(order=first, actor=ACTOR, reason="patient declined")
    other = first_step(make_order())
    services.step_schedule(step=other, start=at(9), station=station, actor=ACTOR)


def test_booking_outside_opening_hours_is_refused():
    station = DeviceFactory(ae_title="CT1", opens_at=dt.time(8), closes_at=dt.time(17))
    step = first_step(make_order())
    with pytest.raises(DomainError, match="open 08:00-17:00"):
        services.step_schedule(step=step, start=at(16, 50), station=station, actor=ACTOR)


@pytest.mark.parametrize("checked_in", [StepStatus.ARRIVED, StepStatus.READY])
def test_moving_a_checked_in_step_undoes_the_check_in(checked_in):
    station = DeviceFactory(ae_title="CT1")
    step = first_step(make_order(station=station, start=at(9)))
    services.step_transition(step=step, to=checked_in, actor=ACTOR)
    step = services.step_schedule(step=step, start=at(11), station=station, actor=ACTOR)
    step.refresh_from_db()
    assert (step.status, step.scheduled_start) == (StepStatus.SCHEDULED, at(11))
    assert AuditEvent.objects.filter(action="step.reschedule", object_id=str(step.pk)).exists()


def test_moving_a_checked_in_step_emits_the_status_change():
    step = first_step(make_order(station=DeviceFactory(ae_title="CT1"), start=at(9)))
    services.step_transition(step=step, to=StepStatus.ARRIVED, actor=ACTOR)
    received = []

    def receiver(sender, step, previous, **kwargs):
        received.append((previous, step.status))

    signals.step_status_changed.connect(receiver)
    try:
        services.step_schedule(step=step, start=at(11), actor=ACTOR)
    finally:
        signals.step_status_changed.disconnect(receiver)
    assert received == [(StepStatus.ARRIVED, StepStatus.SCHEDULED)]


def test_check_in_then_start_then_complete_completes_the_order():
    order = make_order(station=DeviceFactory(), start=at(9))
    step = first_step(order)
    for status in (StepStatus.ARRIVED, StepStatus.STARTED, StepStatus.COMPLETED):
        services.step_transition(step=step, to=status, actor=ACTOR)
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED


def test_invalid_transition_changes_nothing():
    order = make_order(station=DeviceFactory(), start=at(9))
    step = first_step(order)
    with pytest.raises(InvalidTransition):
        services.step_transition(step=step, to=StepStatus.COMPLETED, actor=ACTOR)
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED
    assert not AuditEvent.objects.filter(action="step.completed").exists()


def test_cancel_is_refused_once_a_step_started():
    order = make_order(station=DeviceFactory(), start=at(9))
    services.step_transition(step=first_step(order), to=StepStatus.STARTED, actor=ACTOR)
    with pytest.raises(InvalidTransition, match="already started"):
        services.order_cancel(order=order, actor=ACTOR)


def test_discontinue_request_reports_dc_to_the_his():
    order = make_order(station=DeviceFactory(), start=at(9))
    order = services.order_cancel(order=order, actor=ACTOR, discontinue=True)
    assert order.status == OrderStatus.DISCONTINUED
    assert first_step(order).status == StepStatus.CANCELED


def test_order_status_change_emits_one_signal_per_change():
    received = []

    def receiver(sender, order, previous, **kwargs):
        received.append((previous, order.status))

    signals.order_status_changed.connect(receiver)
    try:
        order = make_order(station=DeviceFactory(), start=at(9))
        step = first_step(order)
        services.step_transition(step=step, to=StepStatus.STARTED, actor=ACTOR)
        services.step_transition(step=step, to=StepStatus.COMPLETED, actor=ACTOR)
    finally:
        signals.order_status_changed.disconnect(receiver)
    assert received == [(OrderStatus.SCHEDULED, "IP"), ("IP", "CM")]


def test_duplicate_placer_order_number_is_refused_clearly():
    make_order(placer_order_number="PO-1", placer_issuer="HIS")
    with pytest.raises(Duplicate, match="PO-1"):
        make_order(placer_order_number="PO-1", placer_issuer="HIS")


def test_same_placer_number_from_another_issuer_is_a_different_order():
    make_order(placer_order_number="PO-1", placer_issuer="HIS")
    make_order(placer_order_number="PO-1", placer_issuer="OTHER")


def test_patient_upsert_updates_the_same_patient_and_audits_the_change():
    patient, created = services.patient_upsert(
        patient_id="P1", issuer="H", name="Wang^XiaoDong=王^小东", actor=ACTOR
    )
    assert created
    again, created = services.patient_upsert(
        patient_id="P1", issuer="H", name="Wang^Xiaodong=王^晓东", actor=ACTOR
    )
    assert not created and again.pk == patient.pk
    assert again.name_ideographic == "王^晓东"
    change = AuditEvent.objects.get(action="patient.update")
    assert change.before["name_ideographic"] == "王^小东"
    assert change.after["name_ideographic"] == "王^晓东"


def test_patient_person_name_round_trips_all_groups():
    patient = PatientFactory()
    patient.set_person_name("Wang^XiaoDong=王^小东=wang^xiao dong")
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东=wang^xiao dong"
    assert (patient.family_name, patient.given_name) == ("Wang", "XiaoDong")


def test_procedure_type_of_order_sets_step_modality_and_protocol():
    ptype = ProcedureTypeFactory(
        modality="MR", protocol_codes=[{"value": "P1", "scheme": "L", "meaning": "T1"}]
    )
    step = first_step(make_order(procedure_type=ptype))
    assert step.modality == "MR"
    assert step.protocol_codes == [{"value": "P1", "scheme": "L", "meaning": "T1"}]


# --- changes of an order's request (HL7 XO, web, API) -----------------------------------------


def test_order_priority_change_becomes_the_worklist_requested_procedure_priority():
    order = make_order(station=DeviceFactory(ae_title="CT1"), start=at(9))

    services.order_update(order=order, actor=ACTOR, priority=Priority.STAT)

    step = first_step(order)
    assert step.requested_procedure.priority == Priority.STAT
    assert worklist_item(step).RequestedProcedurePriority == "STAT"
    change = AuditEvent.objects.get(action="procedure.update")
    assert (change.before["priority"], change.after["priority"]) == ("ROUTINE", "STAT")


def test_procedure_change_makes_the_step_the_new_exam_and_audits_before_and_after():
    order = make_order(station=DeviceFactory(ae_title="CT1"), start=at(9))
    chest = ProcedureTypeFactory(
        code_value="CTCHEST", description="CT Chest", default_duration_minutes=30,
        protocol_codes=[{"value": "P2", "scheme": "L", "meaning": "Arterial"}],
    )

    services.procedure_change(procedure=order.procedures.get(), procedure_type=chest, actor=ACTOR)

    step = first_step(order)
    item = worklist_item(step)
    assert item.RequestedProcedureCodeSequence[0].CodeValue == "CTCHEST"
    assert item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription == "CT Chest"
    assert step.scheduled_end == at(9, 30)
    change = AuditEvent.objects.get(action="procedure.change")
    assert change.after["code_value"] == "CTCHEST" != change.before["code_value"]
    assert AuditEvent.objects.filter(action="step.update", object_id=str(step.pk)).exists()


def test_procedure_change_to_a_longer_exam_that_would_overlap_the_next_is_refused():
    station = DeviceFactory(ae_title="CT1")
    order = make_order(station=station, start=at(9))
    make_order(station=station, start=at(9, 15))
    longer = ProcedureTypeFactory(code_value="CTLONG", default_duration_minutes=30)

    with pytest.raises(ScheduleConflict, match="CT1 is booked from .* 09:15"):
        services.procedure_change(
            procedure=order.procedures.get(), procedure_type=longer, actor=ACTOR
        )

    step = first_step(order)
    assert (step.expected_duration_minutes, step.scheduled_end) == (15, at(9, 15))
    assert step.requested_procedure.procedure_type != longer


def test_procedure_change_of_an_unscheduled_step_sets_only_the_expected_duration():
    order = make_order()
    longer = ProcedureTypeFactory(code_value="CTLONG", default_duration_minutes=45)

    services.procedure_change(procedure=order.procedures.get(), procedure_type=longer, actor=ACTOR)

    step = first_step(order)
    assert (step.expected_duration_minutes, step.scheduled_end) == (45, None)
    assert step.status == StepStatus.UNSCHEDULED
