"""The MPPS services without sockets: transactions, signals and staff reconciliation."""

from __future__ import annotations

import pytest
from django.db import connection
from pydicom.uid import generate_uid

from mpps import services, signals
from mpps.models import PerformedProcedureStep, Reconciliation, StepLink
from mpps.services import StepConflict
from tests.factories import DeviceFactory, first_step, make_order
from tests.mpps.modality import Modality
from worklist import services as worklist_services
from worklist.audit import Actor
from worklist.errors import DomainError
from worklist.models import AuditEvent, StepStatus

pytestmark = pytest.mark.django_db

CT01 = Actor.ae("CT01")
STAFF = Actor.system("radiographer")


@pytest.fixture
def step():
    return first_step(make_order(station=DeviceFactory(ae_title="CT01")))


@pytest.fixture
def datasets():
    """Builds the same attribute lists as the SCU tests (no association is opened)."""
    return Modality(port=0)


def unmatched_pps(datasets, step) -> PerformedProcedureStep:
    ds = datasets.pps_for(step)
    ds.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = "SPS-TYPO"
    return services.pps_create(sop_instance_uid=generate_uid(), dataset=ds, actor=CT01)


def test_pps_received_is_sent_inside_the_transaction_for_n_create_and_n_set(datasets, step):
    seen = []

    def receiver(sender, pps, operation, attributes, actor, **kwargs):
        seen.append((operation, pps.status, attributes["00400252"]["Value"], actor.name,
                     connection.in_atomic_block))

    signals.pps_received.connect(receiver)
    try:
        uid = generate_uid()
        services.pps_create(sop_instance_uid=uid, dataset=datasets.pps_for(step), actor=CT01)
        services.pps_update(sop_instance_uid=uid, dataset=datasets.completed(), actor=CT01)
    finally:
        signals.pps_received.disconnect(receiver)
    assert seen == [
        ("N-CREATE", "IN PROGRESS", ["IN PROGRESS"], "CT01", True),
        ("N-SET", "COMPLETED", ["COMPLETED"], "CT01", True),
    ]


def test_a_failing_receiver_rolls_back_the_whole_n_create(datasets, step):
    def broken_forwarder(sender, **kwargs):
        raise RuntimeError("queue unavailable")

    signals.pps_received.connect(broken_forwarder)
    try:
        with pytest.raises(RuntimeError):
            services.pps_create(
                sop_instance_uid=generate_uid(), dataset=datasets.pps_for(step), actor=CT01
            )
    finally:
        signals.pps_received.disconnect(broken_forwarder)
    assert not PerformedProcedureStep.objects.exists()
    step.refresh_from_db()
    assert step.status == StepStatus.SCHEDULED
    assert not AuditEvent.objects.filter(actor="CT01").exists()


def test_staff_link_refuses_a_cancelled_step_and_changes_nothing(datasets, step):
    pps = unmatched_pps(datasets, step)
    worklist_services.order_cancel(order=step.requested_procedure.order, actor=STAFF)
    step.refresh_from_db()
    with pytest.raises(StepConflict, match="cancel"):
        services.pps_link(pps=pps, steps=[step], actor=STAFF)
    pps.refresh_from_db()
    assert pps.reconciliation == Reconciliation.UNMATCHED
    assert not StepLink.objects.exists()


def test_staff_link_of_an_in_progress_pps_starts_the_step(datasets, step):
    pps = unmatched_pps(datasets, step)
    assert "no scheduled step has SPS ID SPS-TYPO" in pps.reconciliation_note
    services.pps_link(pps=pps, steps=[step], actor=STAFF, note="typo at the modality")
    step.refresh_from_db()
    assert step.status == StepStatus.STARTED
    link = StepLink.objects.get()
    assert (link.source, link.step_id) == (StepLink.Source.STAFF, step.pk)
    pps.refresh_from_db()
    assert pps.reconciliation == Reconciliation.LINKED
    assert "typo at the modality" in pps.reconciliation_note


def test_linking_an_order_without_live_steps_is_refused(datasets, step):
    pps = unmatched_pps(datasets, step)
    other = make_order()  # its step is unscheduled: not on any worklist yet
    with pytest.raises(DomainError, match="no scheduled step this PPS can be linked to"):
        services.pps_link_order(pps=pps, order=other, actor=STAFF)


def test_dismissing_an_exception_needs_a_reason_and_closes_it(datasets, step):
    pps = unmatched_pps(datasets, step)
    with pytest.raises(DomainError, match="say why"):
        services.pps_dismiss(pps=pps, actor=STAFF, reason=" ")
    services.pps_dismiss(pps=pps, actor=STAFF, reason="phantom QA scan")
    pps.refresh_from_db()
    assert pps.reconciliation == Reconciliation.DISMISSED
    assert not pps.is_exception
    assert AuditEvent.objects.filter(action="pps.dismiss", detail="phantom QA scan").exists()


def test_matched_pps_cannot_be_dismissed(datasets, step):
    pps = services.pps_create(
        sop_instance_uid=generate_uid(), dataset=datasets.pps_for(step), actor=CT01
    )
    with pytest.raises(DomainError, match="is not an exception"):
        services.pps_dismiss(pps=pps, actor=STAFF, reason="why not")


def test_timezone_offset_from_utc_sets_the_start_instant(datasets, step):
    ds = datasets.pps_for(step)
    ds.PerformedProcedureStepStartDate = "20260301"
    ds.PerformedProcedureStepStartTime = "083000"
    ds.TimezoneOffsetFromUTC = "+0800"
    pps = services.pps_create(sop_instance_uid=generate_uid(), dataset=ds, actor=CT01)
    assert pps.started_at.isoformat() == "2026-03-01T08:30:00+08:00"
