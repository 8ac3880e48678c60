"""The storage gateway forwards a modality's images to a real Orthanc, coerced to the order."""

from __future__ import annotations

from collections import Counter

import pytest

from mpps.forwarding.models import (
    CommitmentRequest,
    InstanceDelivery,
    SpooledInstance,
    StepImages,
)
from tests.factories import DeviceFactory, PatientFactory, first_step, make_order
from tests.forwarding.conftest import spool_files, wait_for
from tests.forwarding.instances import ct_study, store
from worklist.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

COMMITTED = InstanceDelivery.State.COMMITTED


def all_committed(count: int):
    return lambda: InstanceDelivery.objects.filter(state=COMMITTED).count() == count


@pytest.fixture
def ordered_step():
    patient = PatientFactory(
        patient_id="P-1001",
        issuer="HOSP",
        name_alphabetic="Wang^XiaoDong",
        name_ideographic="王^小东",
    )
    return first_step(make_order(patient=patient, station=DeviceFactory(ae_title="CT01")))


def test_study_reaches_the_pacs_once_with_the_orders_identity_and_is_committed(
    gateway, pacs, destination, ordered_step
):
    service = gateway
    procedure = ordered_step.requested_procedure
    images = ct_study(6, series=2, study_uid=procedure.study_instance_uid)

    assert store(service.dicom_port, images) == [0x0000] * 6

    wait_for(all_committed(6), what="commitment of 6 instances", service=service)
    at_pacs = pacs.instances_of_study(procedure.study_instance_uid)
    uids = Counter(i["MainDicomTags"]["SOPInstanceUID"] for i in at_pacs)
    assert uids == Counter(ds.SOPInstanceUID for ds in images)
    for instance in at_pacs:
        tags = pacs.tags(instance["ID"])
        assert tags["PatientID"] == "P-1001"
        assert tags["PatientName"] == "Wang^XiaoDong=王^小东"
        assert tags["IssuerOfPatientID"] == "HOSP"
        assert tags["AccessionNumber"] == procedure.order.accession_number
        assert tags["RequestAttributesSequence"][0]["RequestedProcedureID"] == (
            procedure.requested_procedure_id
        )
        assert tags["RequestAttributesSequence"][0]["ScheduledProcedureStepID"] == (
            ordered_step.sps_id
        )
        original = tags["OriginalAttributesSequence"][0]
        assert original["ReasonForTheAttributeModification"] == "COERCE"
        assert original["SourceOfPreviousValues"] == "CT01"
        assert original["ModifiedAttributesSequence"][0]["PatientID"] == "CT-LOCAL-77"
        assert original["ModifiedAttributesSequence"][0]["PatientName"] == "Typed^At The Console"
    commitments = CommitmentRequest.objects.all()
    assert {c.state for c in commitments} == {CommitmentRequest.State.SUCCESS}
    assert {c.report_via for c in commitments} == {"new association from ORTHANC"}
    wait_for(lambda: spool_files(service, images) == [], what="an empty spool")
    assert not SpooledInstance.objects.filter(purged_at__isnull=True).exists()
    counts = StepImages.objects.get(step=ordered_step)
    assert (counts.received_series, counts.received_instances) == (2, 6)
    # One audit row per study and association each way (ATNA DICOM Instances Transferred).
    study = procedure.study_instance_uid
    received = AuditEvent.objects.get(action="dicom.instances_received", object_id=study)
    assert received.actor_type == "AE"
    assert received.after["instances"] == 6 and received.after["patient_id"] == "P-1001"
    sent = AuditEvent.objects.filter(action="dicom.instances_sent", object_id=study)
    assert sum(row.after["instances"] for row in sent) == 6


def test_instance_matched_by_accession_number_gets_the_orders_patient(
    gateway, pacs, destination, ordered_step
):
    service = gateway
    accession = ordered_step.requested_procedure.order.accession_number
    images = ct_study(1, accession=accession)  # the modality's own Study Instance UID

    assert store(service.dicom_port, images) == [0x0000]

    wait_for(all_committed(1), what="storage commitment")
    (instance,) = pacs.instances_of_study(images[0].StudyInstanceUID)
    tags = pacs.tags(instance["ID"])
    assert (tags["PatientID"], tags["AccessionNumber"]) == ("P-1001", accession)
    assert SpooledInstance.objects.get().step == ordered_step


def test_instance_of_no_order_is_forwarded_unchanged_and_flagged(gateway, pacs, destination):
    service = gateway
    images = ct_study(1, patient_id="WALK-IN-9", accession="NOT-OURS")

    assert store(service.dicom_port, images) == [0x0000]

    wait_for(all_committed(1), what="storage commitment")
    (instance,) = pacs.instances_of_study(images[0].StudyInstanceUID)
    tags = pacs.tags(instance["ID"])
    assert (tags["PatientID"], tags["AccessionNumber"]) == ("WALK-IN-9", "NOT-OURS")
    assert "OriginalAttributesSequence" not in tags
    spooled = SpooledInstance.objects.get()
    assert spooled.matched is False
    assert spooled.step is None


def test_instance_without_study_uid_is_refused_and_nothing_is_spooled(gateway, pacs, destination):
    service = gateway
    bad, good = ct_study(2)
    del bad.StudyInstanceUID

    assert store(service.dicom_port, [bad, good]) == [0xA900, 0x0000]

    assert list(SpooledInstance.objects.values_list("sop_instance_uid", flat=True)) == [
        good.SOPInstanceUID
    ]
