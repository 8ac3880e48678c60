"""Real modality sequences (pynetdicom SCU) against a running ``ris serve``: what the department
sees afterwards in the stored PPS, the step and order status, the worklist and the HIS queue."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.dsutils import encode

from mpps import services as mpps_services
from mpps.models import PerformedProcedureStep, PPSStatus, Reconciliation, StepLink
from ris.hl7.notifications import KIND as HIS_STATUS_JOB
from ris.models import HL7Destination, OutboundJob
from tests.factories import PatientFactory, ProcedureTypeFactory, first_step, make_order
from tests.mpps.modality import code, series_item
from tests.mpps.mwl import worklist_accessions
from worklist import services
from worklist.audit import Actor
from worklist.models import AuditEvent, OrderStatus, StepStatus
from worklist.services import ProcedureRequest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]


@pytest.fixture
def his(ris_service):
    """An HIS that wants order status messages (nothing listens: the jobs stay queued)."""
    return HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=9)


def his_statuses(order) -> list[str]:
    jobs = OutboundJob.objects.filter(kind=HIS_STATUS_JOB, payload__order_id=order.pk)
    return [job.payload["order_status"] for job in jobs.order_by("id")]


def refreshed(step):
    step.refresh_from_db()
    step.requested_procedure.order.refresh_from_db()
    return step


def grouped_order(station, count: int = 2):
    """One order with ``count`` requested procedures on the same station (grouped procedures)."""
    start = timezone.now().replace(microsecond=0)
    order = services.order_create(
        patient=PatientFactory(),
        procedures=[
            ProcedureRequest(
                ProcedureTypeFactory(),
                scheduled_start=start + dt.timedelta(minutes=30 * i),
                station=station,
            )
            for i in range(count)
        ],
        actor=Actor.system("test"),
    )
    return order, [p.steps.get() for p in order.procedures.order_by("pk")]


def test_create_add_series_complete_completes_step_and_order(
    modality, scheduled_step, ris_service, his
):
    order = scheduled_step.requested_procedure.order
    rsp, uid = modality.n_create(modality.pps_for(scheduled_step))
    assert rsp.status == 0x0000
    assert refreshed(scheduled_step).status == StepStatus.STARTED
    assert scheduled_step.requested_procedure.order.status == OrderStatus.IN_PROGRESS

    first = series_item(images=3)
    more = Dataset()
    more.PerformedSeriesSequence = [first]
    assert modality.n_set(uid, more).status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.status == PPSStatus.IN_PROGRESS
    assert [s.image_count for s in pps.series.all()] == [3]

    second = series_item(images=2, protocol="Chest delayed")
    assert modality.n_set(uid, modality.completed(first, second)).status == 0x0000

    pps.refresh_from_db()
    assert pps.status == PPSStatus.COMPLETED
    assert pps.ended_at is not None
    assert pps.reconciliation == Reconciliation.MATCHED
    assert list(pps.steps.all()) == [scheduled_step]
    assert [(s.protocol_name, s.image_count) for s in pps.series.order_by("id")] == [
        ("Chest routine", 3),
        ("Chest delayed", 2),
    ]
    assert pps.dataset["00400252"]["Value"] == ["COMPLETED"]
    assert len(pps.dataset["00400340"]["Value"]) == 2
    assert pps.dataset["00400270"]["Value"][0]["00400009"]["Value"] == [scheduled_step.sps_id]
    assert refreshed(scheduled_step).status == StepStatus.COMPLETED
    assert scheduled_step.requested_procedure.order.status == OrderStatus.COMPLETED
    assert order.accession_number not in worklist_accessions(
        ris_service.dicom_port, station="CT01"
    )
    assert his_statuses(order) == ["IP", "CM"]
    actions = set(
        AuditEvent.objects.filter(actor="CT01").values_list("action", flat=True)
    )
    assert {"pps.create", "pps.update", "step.started", "step.completed"} <= actions


def test_scheduled_step_is_on_the_worklist_until_the_modality_starts_it(
    modality, scheduled_step, ris_service
):
    accession = scheduled_step.requested_procedure.order.accession_number
    assert accession in worklist_accessions(ris_service.dicom_port, station="CT01")
    modality.n_create(modality.pps_for(scheduled_step))
    assert accession not in worklist_accessions(ris_service.dicom_port, station="CT01")


def test_discontinued_with_a_reason_discontinues_step_and_order(
    modality, scheduled_step, ris_service, his
):
    order = scheduled_step.requested_procedure.order
    _, uid = modality.n_create(modality.pps_for(scheduled_step))
    reason = code("110505", "DCM", "Patient refused to continue procedure")
    rsp = modality.n_set(uid, modality.discontinued(reason, series_item(images=1)))
    assert rsp.status == 0x0000

    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.status == PPSStatus.DISCONTINUED
    assert pps.discontinuation_code == ("110505", "DCM")
    step = refreshed(scheduled_step)
    assert step.status == StepStatus.DISCONTINUED
    assert "Patient refused to continue procedure" in step.status_reason
    assert step.requested_procedure.order.status == OrderStatus.DISCONTINUED
    assert his_statuses(order) == ["IP", "DC"]
    assert order.accession_number not in worklist_accessions(
        ris_service.dicom_port, station="CT01"
    )


def test_discontinued_before_any_image_needs_no_series(modality, scheduled_step):
    _, uid = modality.n_create(modality.pps_for(scheduled_step))
    reason = code("110503", "DCM", "Patient allergic to media/contrast")
    assert modality.n_set(uid, modality.discontinued(reason)).status == 0x0000
    assert refreshed(scheduled_step).status == StepStatus.DISCONTINUED


def test_incorrect_worklist_entry_puts_the_step_back_on_the_worklist(
    modality, scheduled_step, ris_service, his
):
    order = scheduled_step.requested_procedure.order
    _, uid = modality.n_create(modality.pps_for(scheduled_step))
    wrong_entry = code("110514", "DCM", "Incorrect worklist entry selected")
    assert modality.n_set(uid, modality.discontinued(wrong_entry)).status == 0x0000

    step = refreshed(scheduled_step)
    assert step.status == StepStatus.SCHEDULED
    assert step.requested_procedure.order.status == OrderStatus.SCHEDULED
    assert his_statuses(order) == ["IP", "SC"]
    assert order.accession_number in worklist_accessions(ris_service.dicom_port, station="CT01")

    # The right patient comes later: a new PPS starts the step again.
    rsp, _ = modality.n_create(modality.pps_for(scheduled_step))
    assert rsp.status == 0x0000
    assert refreshed(scheduled_step).status == StepStatus.STARTED


def test_two_pps_for_one_step_complete_it_when_both_are_done(modality, scheduled_step):
    _, first = modality.n_create(modality.pps_for(scheduled_step))
    _, second = modality.n_create(modality.pps_for(scheduled_step))
    assert refreshed(scheduled_step).status == StepStatus.STARTED
    assert StepLink.objects.filter(step=scheduled_step).count() == 2

    assert modality.n_set(first, modality.completed()).status == 0x0000
    assert refreshed(scheduled_step).status == StepStatus.STARTED  # the second still runs

    assert modality.n_set(second, modality.completed()).status == 0x0000
    step = refreshed(scheduled_step)
    assert step.status == StepStatus.COMPLETED
    assert step.requested_procedure.order.status == OrderStatus.COMPLETED


def test_a_pps_appended_to_a_completed_step_leaves_it_completed(modality, scheduled_step):
    _, first = modality.n_create(modality.pps_for(scheduled_step))
    modality.n_set(first, modality.completed())
    rsp, append = modality.n_create(modality.pps_for(scheduled_step))
    assert rsp.status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=append)
    assert pps.reconciliation == Reconciliation.MATCHED
    assert refreshed(scheduled_step).status == StepStatus.COMPLETED


def test_one_pps_for_two_steps_starts_and_completes_both(modality, ct_station, ris_service):
    order, steps = grouped_order(ct_station)
    _, uid = modality.n_create(modality.pps_for(*steps))
    assert [refreshed(s).status for s in steps] == [StepStatus.STARTED] * 2

    assert modality.n_set(uid, modality.completed()).status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert sorted(pps.steps.values_list("pk", flat=True)) == [s.pk for s in steps]
    assert [refreshed(s).status for s in steps] == [StepStatus.COMPLETED] * 2
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPLETED
    assert order.accession_number not in worklist_accessions(
        ris_service.dicom_port, station="CT01"
    )


def test_order_stays_in_progress_until_all_its_steps_are_completed(
    modality, ct_station, ris_service
):
    order, (done, waiting) = grouped_order(ct_station)
    _, uid = modality.n_create(modality.pps_for(done))
    modality.n_set(uid, modality.completed())

    assert refreshed(done).status == StepStatus.COMPLETED
    assert refreshed(waiting).status == StepStatus.SCHEDULED
    order.refresh_from_db()
    assert order.status == OrderStatus.IN_PROGRESS
    assert order.accession_number in worklist_accessions(ris_service.dicom_port, station="CT01")


def test_unscheduled_pps_is_an_exception_until_staff_link_it(modality, scheduled_step, his):
    order = scheduled_step.requested_procedure.order
    patient = order.patient
    # IHE RAD-6 unscheduled case: the modality made up a Study Instance UID, no worklist IDs.
    unscheduled = Dataset()
    unscheduled.StudyInstanceUID = generate_uid()
    unscheduled.AccessionNumber = ""
    unscheduled.RequestedProcedureID = ""
    unscheduled.ScheduledProcedureStepID = ""
    ds = modality.pps_for(scheduled_step)
    ds.ScheduledStepAttributesSequence = [unscheduled]
    rsp, uid = modality.n_create(ds)
    assert rsp.status == 0x0000
    assert modality.n_set(uid, modality.completed()).status == 0x0000

    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.reconciliation == Reconciliation.UNMATCHED
    assert pps.is_exception
    assert "no scheduled step has study" in pps.reconciliation_note
    assert pps.patient_id == patient.patient_id
    assert not pps.steps.exists()
    assert refreshed(scheduled_step).status == StepStatus.SCHEDULED

    staff = Actor.system("radiographer")
    mpps_services.pps_link_order(pps=pps, order=order, actor=staff)

    pps.refresh_from_db()
    assert pps.reconciliation == Reconciliation.LINKED
    assert not pps.is_exception
    assert list(pps.steps.all()) == [scheduled_step]
    step = refreshed(scheduled_step)
    assert step.status == StepStatus.COMPLETED
    assert step.requested_procedure.order.status == OrderStatus.COMPLETED
    assert his_statuses(order) == ["IP", "CM"]
    assert AuditEvent.objects.filter(action="pps.link", object_id=str(pps.pk)).exists()


def test_accession_typo_is_an_exception_naming_the_bad_value(modality, scheduled_step):
    ds = modality.pps_for(scheduled_step)
    ds.ScheduledStepAttributesSequence[0].AccessionNumber = "A00000000X"
    rsp, uid = modality.n_create(ds)
    assert rsp.status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.reconciliation == Reconciliation.UNMATCHED
    assert "not A00000000X" in pps.reconciliation_note
    assert refreshed(scheduled_step).status == StepStatus.SCHEDULED


def test_pps_for_another_patient_is_not_linked(modality, scheduled_step):
    ds = modality.pps_for(scheduled_step, patient_id="SOMEONE-ELSE")
    rsp, uid = modality.n_create(ds)
    assert rsp.status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.reconciliation == Reconciliation.UNMATCHED
    assert "SOMEONE-ELSE" in pps.reconciliation_note
    assert refreshed(scheduled_step).status == StepStatus.SCHEDULED


def test_pps_on_a_cancelled_step_is_kept_as_a_conflict(modality, scheduled_step):
    order = scheduled_step.requested_procedure.order
    services.order_cancel(order=order, actor=Actor.system("test"), reason="HIS cancelled")
    rsp, uid = modality.n_create(modality.pps_for(scheduled_step))
    assert rsp.status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.reconciliation == Reconciliation.CONFLICT
    assert "cancel" in pps.reconciliation_note
    assert refreshed(scheduled_step).status == StepStatus.CANCELED


def test_n_create_without_affected_uid_gets_one_assigned_and_returned(modality, scheduled_step):
    rsp, uid = modality.n_create(modality.pps_for(scheduled_step), uid=None)
    assert rsp.status == 0x0000
    assert rsp.affected_uid
    assert PerformedProcedureStep.objects.filter(sop_instance_uid=rsp.affected_uid).exists()
    assert modality.n_set(rsp.affected_uid, modality.completed()).status == 0x0000
    assert refreshed(scheduled_step).status == StepStatus.COMPLETED


def test_chinese_names_survive_gb18030_and_an_n_set_without_character_set(
    modality, ct_station
):
    patient = PatientFactory(name_alphabetic="Wang^XiaoDong", name_ideographic="王^小东")
    step = first_step(make_order(patient=patient, station=ct_station))
    ds = modality.pps_for(step)
    ds.SpecificCharacterSet = "GB18030"
    ds.PerformedProcedureStepDescription = "胸部CT平扫"
    _, uid = modality.n_create(ds)
    final = modality.completed(series_item())
    final.SpecificCharacterSet = "GB18030"
    final.PerformedSeriesSequence[0].OperatorsName = "李^娜"
    final.CommentsOnThePerformedProcedureStep = "患者配合良好"
    # Many modalities leave (0008,0005) out of the N-SET: the N-CREATE's character set applies.
    raw = without_character_set(encode(final, False, True))
    assert modality.send_raw("N-SET", uid, raw).status == 0x0000

    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.patient_name == "Wang^XiaoDong=王^小东"
    assert pps.description == "胸部CT平扫"
    assert pps.comments == "患者配合良好"
    assert pps.series.get().operators == "李^娜"
    assert pps.character_set == "GB18030"


def without_character_set(raw: bytes) -> bytes:
    """Explicit VR Little Endian bytes with the (0008,0005) element cut out, values untouched."""
    header = b"\x08\x00\x05\x00CS"
    start = raw.index(header)
    length = int.from_bytes(raw[start + 6 : start + 8], "little")
    return raw[:start] + raw[start + 8 + length :]
