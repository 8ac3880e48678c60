"""Step status from images (``mpps.forwarding.progress``): the domain rules, without sockets.

Instances are handed to ``services.receive_instance`` as the gateway's C-STORE handler does (the
real DIMSE path, with DCMTK and a HIS, is in ``test_images_workflow.py``).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from pydicom.uid import generate_uid

from mpps import services as mpps_services
from mpps.forwarding import progress, services
from mpps.forwarding.models import SpooledInstance, StepImages
from tests.factories import DeviceFactory, PatientFactory, ProcedureTypeFactory, at, make_order
from tests.factories import first_step as step_of
from tests.forwarding.instances import dx_study
from tests.mpps.modality import Modality as ModalityScu
from worklist import services as worklist_services
from worklist.audit import Actor
from worklist.models import AuditEvent, Order, StepProgress, StepStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def spool(settings, tmp_path):
    settings.RIS_FORWARD_SPOOL_DIR = tmp_path / "spool"
    settings.RIS_STUDY_STABLE_SECONDS = 120
    services._match_cache.clear()
    yield
    services._match_cache.clear()


def dx_step(mode: str = StepProgress.IMAGES, *, patient=None, start=None, ae="DX1"):
    station = DeviceFactory(ae_title=ae, modality="DX", step_progress=mode)
    order = make_order(
        patient=patient or PatientFactory(patient_id="P-77"),
        procedure_type=ProcedureTypeFactory(code_value="DXCHEST", modality="DX"),
        station=station,
        start=start or at(9),
    )
    return step_of(order)


def receive(datasets, ae: str = "DX1") -> None:
    for ds in datasets:
        services.receive_instance(dataset=ds, file_meta=ds.file_meta, calling_ae_title=ae)


def status_of(step) -> str:
    step.refresh_from_db()
    return step.status


def test_the_first_image_starts_a_step_of_an_images_only_device(django_capture_on_commit_callbacks):
    step = dx_step()
    receive(dx_study(2, study_uid=step.requested_procedure.study_instance_uid))

    assert status_of(step) == StepStatus.STARTED
    assert Order.objects.get().status == "IP"
    event = AuditEvent.objects.get(action="step.started")
    assert (event.actor_type, event.actor) == ("SYSTEM", "images")
    assert event.detail == "images received: first instance received from DX1"


def test_images_do_not_move_a_step_of_an_mpps_only_device():
    step = dx_step(StepProgress.MPPS)
    receive(dx_study(1, study_uid=step.requested_procedure.study_instance_uid))
    assert status_of(step) == StepStatus.SCHEDULED
    assert StepImages.objects.get(step=step).received_instances == 1


def test_the_department_default_applies_to_a_device_without_a_choice(settings):
    settings.RIS_STEP_PROGRESS_DEFAULT = "IMAGES"
    step = dx_step(StepProgress.DEFAULT)
    receive(dx_study(1, study_uid=step.requested_procedure.study_instance_uid))
    assert status_of(step) == StepStatus.STARTED


def test_a_study_stable_for_the_set_time_completes_its_step():
    step = dx_step()
    receive(dx_study(3, study_uid=step.requested_procedure.study_instance_uid))
    assert progress.complete_stable_studies() == 0  # images still arriving

    StepImages.objects.filter(step=step).update(
        last_received_at=timezone.now() - dt.timedelta(seconds=121)
    )
    assert progress.complete_stable_studies() == 1

    assert status_of(step) == StepStatus.COMPLETED
    assert Order.objects.get().status == "CM"
    event = AuditEvent.objects.get(action="step.completed")
    assert event.detail == "study stable: no new instance for 120 s (3 received by the gateway)"


def test_a_new_instance_at_the_pacs_keeps_the_study_from_being_stable():
    step = dx_step()
    worklist_services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.system())
    services.record_availability(step=step, destination="PACS", series=1, instances=2)
    images = StepImages.objects.get(step=step)
    StepImages.objects.filter(pk=images.pk).update(
        pacs_changed_at=timezone.now() - dt.timedelta(hours=1)
    )
    services.record_availability(step=step, destination="PACS", series=1, instances=2)
    assert [s.pk for s in progress.stable_steps()] == [step.pk]  # same count: still stable

    services.record_availability(step=step, destination="PACS", series=1, instances=3)
    assert progress.stable_steps() == []


def test_a_study_found_at_the_pacs_starts_a_waiting_step():
    step = dx_step()
    step = type(step).objects.select_related("station").get(pk=step.pk)
    services.record_availability(step=step, destination="orthanc", series=1, instances=1)
    assert progress.start_from_images(step, source="found at orthanc")
    assert status_of(step) == StepStatus.STARTED
    assert AuditEvent.objects.get(action="step.started").detail == (
        "images received: first instance found at orthanc"
    )


def pps_in_progress(step):
    ds = ModalityScu(port=0).pps_for(step)
    return mpps_services.pps_create(
        sop_instance_uid=generate_uid(), dataset=ds, actor=Actor.ae("DX1")
    )


def test_with_both_mpps_wins_a_stable_study_does_not_complete_a_step_with_a_pps():
    step = dx_step(StepProgress.BOTH)
    receive(dx_study(1, study_uid=step.requested_procedure.study_instance_uid))
    assert status_of(step) == StepStatus.STARTED  # images first
    pps_in_progress(step)  # then the MPPS comes: it drives the step now
    StepImages.objects.filter(step=step).update(
        last_received_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert progress.complete_stable_studies() == 0
    assert status_of(step) == StepStatus.STARTED


def test_mpps_does_not_move_a_step_of_an_images_only_device():
    step = dx_step(StepProgress.IMAGES)
    pps = pps_in_progress(step)
    assert status_of(step) == StepStatus.SCHEDULED
    assert pps.links.get().step_id == step.pk  # recorded and linked all the same


def test_an_instance_without_uid_or_accession_matches_the_patients_one_step_of_the_day():
    step = dx_step()
    images = dx_study(1, patient_id="P-77")  # own Study UID, no accession

    receive(images)

    spooled = SpooledInstance.objects.get()
    assert spooled.step_id == step.pk
    assert spooled.match_note == "matched by Patient ID, modality and day"
    assert spooled.coerced["AccessionNumber"][1] == step.requested_procedure.order.accession_number
    assert status_of(step) == StepStatus.STARTED


def test_two_steps_of_the_patient_that_day_are_an_exception_not_a_guess():
    first = dx_step(start=at(9))
    dx_step(patient=first.requested_procedure.order.patient, start=at(11))

    receive(dx_study(1, patient_id="P-77"))

    spooled = SpooledInstance.objects.get()
    assert spooled.matched is False and spooled.step is None
    assert "2 DX steps today" in spooled.match_note and "ambiguous" in spooled.match_note
    assert status_of(first) == StepStatus.SCHEDULED


def test_a_step_of_another_day_or_modality_is_not_matched_by_patient_id():
    dx_step(start=at(9) - dt.timedelta(days=1))
    receive(dx_study(1, patient_id="P-77"))
    assert SpooledInstance.objects.get().matched is False


def test_the_availability_query_also_asks_about_waiting_steps_of_today_and_recent_days(settings):
    from mpps.forwarding.availability import steps_to_check

    settings.RIS_PACS_AVAILABILITY_DAYS = 2
    patient = PatientFactory()

    def step(start, ae):
        return dx_step(start=start, ae=ae, patient=patient)

    today = step(at(9), "DX1")
    recent = step(at(9) - dt.timedelta(days=2), "DX2")
    step(at(9) - dt.timedelta(days=3), "DX3")  # too old
    step(at(9) + dt.timedelta(days=1), "DX4")  # tomorrow: not done yet
    found = step(at(10), "DX5")
    services.record_availability(step=found, destination="PACS", series=1, instances=1)

    assert sorted(s.pk for s in steps_to_check()) == sorted([today.pk, recent.pk])


def test_the_availability_query_never_writes_back_a_stale_count_of_received_instances(
    monkeypatch,
):
    """The gateway counts an instance into the row between the availability query's read and
    its write (they run in different threads; the interleaving is forced here by counting one
    right after the read, as a concurrent C-STORE commits it)."""
    step = dx_step()
    receive(dx_study(1, study_uid=step.requested_procedure.study_instance_uid))
    read = StepImages.objects.get_or_create

    def read_then_the_gateway_counts(**kwargs):
        row = read(**kwargs)
        monkeypatch.setattr(StepImages.objects, "get_or_create", read)  # the gateway's own read
        receive(dx_study(1, study_uid=step.requested_procedure.study_instance_uid))
        return row

    monkeypatch.setattr(StepImages.objects, "get_or_create", read_then_the_gateway_counts)
    services.record_availability(step=step, destination="PACS", series=1, instances=1)

    images = StepImages.objects.get(step=step)
    assert (images.received_instances, images.pacs_instances) == (2, 1)
