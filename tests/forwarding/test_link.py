"""Linking a gateway study to the right order (``mpps.forwarding.services.study_link``).

The domain side, without sockets: what is corrected in the spool, what each kind of destination
is queued, the IOCM rejection note, the steps' statuses and the HIS jobs. The end-to-end run
with storescu, Orthanc, an IOCM archive and the browser is ``test_reconciliation``.
"""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest
from django.utils import timezone
from pydicom import dcmread

from mpps.forwarding import iocm, spool
from mpps.forwarding import services as forwarding
from mpps.forwarding.models import InstanceDelivery, PacsDestination, SpooledInstance, StepImages
from ris.hl7.notifications import KIND as HIS_JOB
from ris.models import HL7Destination, OutboundJob
from tests.factories import DeviceFactory, PatientFactory, ProcedureTypeFactory, make_order
from tests.factories import first_step as step_of
from tests.forwarding.instances import dx_study
from tests.mwl.dcmtk import tool
from worklist.audit import Actor
from worklist.errors import InvalidTransition
from worklist.models import AuditEvent, StepProgress, StepStatus

pytestmark = pytest.mark.django_db

STAFF = Actor.system("tech.wang")


@pytest.fixture(autouse=True)
def spool_dir(settings, tmp_path):
    settings.RIS_FORWARD_SPOOL_DIR = tmp_path / "spool"
    forwarding._match_cache.clear()


@pytest.fixture
def patient():
    return PatientFactory(patient_id="P-LINK-1", name_alphabetic="Wang^Fang")


def dx_exam(patient, ae_title: str, code: str = "DXCHEST"):
    station = DeviceFactory(ae_title=ae_title, modality="DX", step_progress=StepProgress.IMAGES)
    ptype = ProcedureTypeFactory(code_value=code, modality="DX")
    return step_of(make_order(patient=patient, procedure_type=ptype, station=station))


@pytest.fixture
def right(patient):
    return dx_exam(patient, "DX1", "DXHAND")


@pytest.fixture
def plain():
    return PacsDestination.objects.create(
        name="pacs", ae_title="PACS", host="127.0.0.1", port=1, storage_commitment=False
    )


@pytest.fixture
def archive():
    return PacsDestination.objects.create(
        name="archive", ae_title="ARCHIVE", host="127.0.0.1", port=2, storage_commitment=False,
        iocm=True,
    )


def receive(datasets, ae_title="DX1"):
    for ds in datasets:
        forwarding.receive_instance(dataset=ds, file_meta=ds.file_meta, calling_ae_title=ae_title)
    forwarding._match_cache.clear()


def delivered():
    """Every delivery stored at its destination, and the queue emptied, as after a good day."""
    InstanceDelivery.objects.update(state=InstanceDelivery.State.STORED, store_count=1)
    OutboundJob.objects.update(state=OutboundJob.State.DONE)


def unmatched(count=2, patient_id="WALK-IN-9"):
    images = dx_study(count, patient_id=patient_id, accession="TYPO-1")
    receive(images)
    assert not SpooledInstance.objects.filter(matched=True).exists()
    return images


def spooled(instance: SpooledInstance):
    return dcmread(spool.absolute(instance.path))


def test_an_unmatched_study_is_corrected_with_reason_correct_and_sent_again_under_its_uids(
    right, plain
):
    images = unmatched(2)
    delivered()

    result = forwarding.study_link(
        study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF, note="typo"
    )

    assert (result.corrected, result.not_in_spool) == (2, 0)
    assert result.replaced_at == ["pacs"] and result.rejected_at == []
    assert result.previous_patient_ids == ["WALK-IN-9"]
    for instance in SpooledInstance.objects.all():
        assert instance.matched and instance.step_id == right.pk and instance.linked_at
        ds = spooled(instance)
        assert ds.SOPInstanceUID == instance.sop_instance_uid  # same UIDs for a plain PACS
        assert (ds.PatientID, ds.AccessionNumber) == (
            "P-LINK-1", right.requested_procedure.order.accession_number
        )
        [record] = ds.OriginalAttributesSequence
        assert record.ReasonForTheAttributeModification == "CORRECT"
        assert record.SourceOfPreviousValues == "tech.wang"
        assert record.ModifiedAttributesSequence[0].PatientID == "WALK-IN-9"
        assert instance.patient_id == "WALK-IN-9"  # what the modality sent stays on record
    assert set(InstanceDelivery.objects.values_list("state", flat=True)) == {"PENDING"}
    assert OutboundJob.objects.filter(kind="dicom.store", state="PENDING").count() == 1
    assert StepImages.objects.get(step=right).received_instances == 2
    event = AuditEvent.objects.get(action="step.images_linked")
    assert event.after["corrected"] == 2 and event.detail == "typo"


def test_images_link_starts_a_step_whose_device_follows_the_images(right, plain):
    images = unmatched(1)
    forwarding.study_link(study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF)
    right.refresh_from_db()
    assert right.status == StepStatus.STARTED
    assert AuditEvent.objects.get(action="step.started").detail.endswith("linked by tech.wang")


def test_an_iocm_archive_gets_copies_under_new_uids_and_a_note_rejecting_what_it_holds(
    right, plain, archive
):
    images = unmatched(3)
    delivered()
    old = {ds.SOPInstanceUID for ds in images}

    result = forwarding.study_link(
        study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF
    )

    assert result.rejected_at == ["archive"] and result.rejection_notes == 1
    corrections = SpooledInstance.objects.filter(origin=SpooledInstance.Origin.CORRECTION)
    assert corrections.count() == 3
    for copy in corrections:
        ds = spooled(copy)
        assert ds.SOPInstanceUID not in old and ds.SOPInstanceUID == copy.sop_instance_uid
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.StudyInstanceUID == right.requested_procedure.study_instance_uid
        assert ds.PatientID == "P-LINK-1"
        modified = ds.OriginalAttributesSequence[-1].ModifiedAttributesSequence[0]
        assert modified.SOPInstanceUID == copy.corrects.sop_instance_uid
        assert modified.StudyInstanceUID == images[0].StudyInstanceUID
        assert [d.destination.name for d in copy.deliveries.all()] == ["archive"]
    # The received instances: corrected in place for the plain PACS, withdrawn at the archive.
    states = dict(
        InstanceDelivery.objects.filter(instance__sop_instance_uid__in=old)
        .values_list("destination__name", "state").distinct()
    )
    assert states == {"pacs": "PENDING", "archive": "WITHDRAWN"}

    note = SpooledInstance.objects.get(origin=SpooledInstance.Origin.REJECTION_NOTE)
    assert [d.destination.name for d in note.deliveries.all()] == ["archive"]
    kos = spooled(note)
    assert kos.SOPClassUID == iocm.KEY_OBJECT_SELECTION
    title = kos.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator, title.CodeMeaning) == (
        "113038", "DCM", "Incorrect Modality Worklist Entry"
    )
    # Filed where the archive holds the rejected instances: their study, their patient.
    assert kos.StudyInstanceUID == images[0].StudyInstanceUID
    assert kos.PatientID == "WALK-IN-9"
    referenced = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for item in kos.ContentSequence if item.ValueType == "IMAGE"
    }
    assert referenced == old
    [evidence] = kos.CurrentRequestedProcedureEvidenceSequence
    assert {
        ref.ReferencedSOPInstanceUID
        for series in evidence.ReferencedSeriesSequence for ref in series.ReferencedSOPSequence
    } == old
    assert StepImages.objects.get(step=right).received_instances == 3  # copies are not images


def test_the_rejection_note_is_a_key_object_selection_document_dcmtk_reads(
    right, archive, tmp_path
):
    images = unmatched(2)
    delivered()
    forwarding.study_link(study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF)
    note = SpooledInstance.objects.get(origin=SpooledInstance.Origin.REJECTION_NOTE)

    dump = subprocess.run(
        [tool("dsrdump"), "-Ee", str(spool.absolute(note.path))],
        capture_output=True, text=True, timeout=30,
    )

    assert dump.returncode == 0, dump.stderr
    assert "Key Object Selection Document" in dump.stdout
    assert "Incorrect Modality Worklist Entry" in dump.stdout
    assert dump.stdout.count("IMAGE:") == 2
    assert "warning" not in dump.stderr.lower() and "error" not in dump.stderr.lower()


def test_a_study_linked_twice_rejects_the_first_correction_at_the_archive(
    patient, right, archive
):
    other = dx_exam(patient, "DX2", "DXKNEE")
    images = unmatched(2)
    delivered()
    forwarding.study_link(study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF)
    first = set(
        SpooledInstance.objects.filter(origin="CORRECTION").values_list("sop_instance_uid",
                                                                        flat=True)
    )
    delivered()

    forwarding.study_link(study_instance_uid=images[0].StudyInstanceUID, step=other, actor=STAFF)

    notes = SpooledInstance.objects.filter(origin="REJECTION_NOTE").order_by("pk")
    second = spooled(notes.last())
    assert second.StudyInstanceUID == right.requested_procedure.study_instance_uid
    assert {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            for i in second.ContentSequence if i.ValueType == "IMAGE"} == first
    right.refresh_from_db()
    assert right.status == StepStatus.SCHEDULED  # only these images had started it
    latest = SpooledInstance.objects.filter(origin="CORRECTION", step=other)
    assert latest.count() == 2
    assert {spooled(c).StudyInstanceUID for c in latest} == {
        other.requested_procedure.study_instance_uid
    }
    assert set(
        InstanceDelivery.objects.filter(instance__sop_instance_uid__in=first)
        .values_list("state", flat=True)
    ) == {"WITHDRAWN"}


def test_a_study_on_the_wrong_order_moves_and_that_step_goes_back_to_the_worklist(
    patient, right, plain
):
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=1, version="2.5.1")
    wrong = dx_exam(patient, "DX2", "DXKNEE")
    receive(dx_study(2, study_uid=wrong.requested_procedure.study_instance_uid,
                     patient_id="P-LINK-1"), ae_title="DX2")
    wrong.refresh_from_db()
    assert wrong.status == StepStatus.STARTED  # images-only device: the wrong entry started
    delivered()

    result = forwarding.study_link(
        study_instance_uid=wrong.requested_procedure.study_instance_uid, step=right,
        actor=STAFF, note="picked the knee entry",
    )

    wrong.refresh_from_db()
    right.refresh_from_db()
    assert result.previous_steps == {wrong.sps_id: forwarding.RELEASE_SCHEDULED}
    assert (wrong.status, right.status) == (StepStatus.SCHEDULED, StepStatus.STARTED)
    accession = right.requested_procedure.order.accession_number
    assert wrong.status_reason == (
        f"images linked to order {accession} by tech.wang: picked the knee entry"
    )
    assert StepImages.objects.get(step=wrong).received_instances == 0
    assert result.previous_patient_ids == []  # same patient: a plain PACS overwrites cleanly
    his = OutboundJob.objects.filter(kind=HIS_JOB, state="PENDING").order_by("id")
    statuses = [(job.payload["order_id"], job.payload["order_status"]) for job in his]
    assert statuses == [
        (right.requested_procedure.order_id, "IP"),
        (wrong.requested_procedure.order_id, "SC"),
    ]
    assert AuditEvent.objects.filter(action="step.images_unlinked", object_id=str(wrong.pk))


def test_later_instances_of_a_linked_study_follow_the_link(right, plain):
    images = unmatched(1)
    forwarding.study_link(study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF)

    more = dx_study(1, study_uid=images[0].StudyInstanceUID, patient_id="WALK-IN-9",
                    accession="TYPO-1")
    receive(more)

    instance = SpooledInstance.objects.get(sop_instance_uid=more[0].SOPInstanceUID)
    assert instance.step_id == right.pk and instance.matched
    assert spooled(instance).PatientID == "P-LINK-1"


def test_a_purged_instance_is_counted_not_corrected(right, plain):
    images = unmatched(1)
    SpooledInstance.objects.update(path="", purged_at=timezone.now())
    result = forwarding.study_link(
        study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF
    )
    assert (result.corrected, result.not_in_spool) == (0, 1)
    assert not SpooledInstance.objects.filter(matched=True).exists()


def test_a_cancelled_exam_takes_no_images(right, plain):
    from worklist import services

    images = unmatched(1)
    services.step_transition(step=right, to=StepStatus.CANCELED, actor=STAFF, reason="test")
    with pytest.raises(InvalidTransition):
        forwarding.study_link(
            study_instance_uid=images[0].StudyInstanceUID, step=right, actor=STAFF
        )


def test_an_unmatched_instance_stays_in_the_spool_for_linking_after_delivery(settings, plain):
    settings.RIS_FORWARD_SPOOL_RETENTION_HOURS = 0
    settings.RIS_FORWARD_UNMATCHED_RETENTION_HOURS = 72
    unmatched(1)
    InstanceDelivery.objects.update(state="STORED", sent_at=timezone.now())
    assert forwarding.purge_spool() == 0
    assert SpooledInstance.objects.get().path != ""
    InstanceDelivery.objects.update(sent_at=timezone.now() - dt.timedelta(hours=73))
    assert forwarding.purge_spool() == 1


def test_a_copy_under_new_uids_records_the_old_ones_even_when_no_value_changed():
    from mpps.forwarding import coercion

    [ds] = dx_study(1)
    old = (ds.StudyInstanceUID, ds.SOPInstanceUID)
    coercion.reidentify(
        ds, study_uid="2.25.1", series_uid="2.25.2", sop_uid="2.25.3", modifying_system="RIS",
        source="tech.wang", amend_last=False,
    )
    [record] = ds.OriginalAttributesSequence
    assert record.ReasonForTheAttributeModification == "CORRECT"
    modified = record.ModifiedAttributesSequence[0]
    assert (modified.StudyInstanceUID, modified.SOPInstanceUID) == old
    assert (ds.SOPInstanceUID, ds.file_meta.MediaStorageSOPInstanceUID) == ("2.25.3", "2.25.3")


# --- A40 merge and A47 identifier change: the spool follows the patient -----------------------


def test_a_new_patient_identifier_corrects_what_the_spool_holds_for_both_kinds_of_pacs(
    patient, right, plain, archive
):
    from worklist import services

    images = dx_study(2, study_uid=right.requested_procedure.study_instance_uid,
                      patient_id="P-LINK-1")
    receive(images)
    delivered()

    services.patient_change_identifier(
        patient=patient, patient_id="P-NEW-7", issuer="", actor=Actor.hl7("HIS")
    )

    originals = SpooledInstance.objects.filter(origin="RECEIVED")
    for instance in originals:
        ds = spooled(instance)
        assert ds.PatientID == "P-NEW-7"
        assert ds.OriginalAttributesSequence[-1].ReasonForTheAttributeModification == "CORRECT"
        assert ds.OriginalAttributesSequence[-1].ModifiedAttributesSequence[0].PatientID == (
            "P-LINK-1"
        )
    assert set(
        InstanceDelivery.objects.filter(instance__in=originals, destination=plain)
        .values_list("state", flat=True)
    ) == {"PENDING"}
    note = spooled(SpooledInstance.objects.get(origin="REJECTION_NOTE"))
    assert note.PatientID == "P-LINK-1"  # where the archive holds the old copies
    copies = SpooledInstance.objects.filter(origin="CORRECTION")
    assert {spooled(c).PatientID for c in copies} == {"P-NEW-7"}
    assert AuditEvent.objects.filter(action="step.images_corrected").count() == 1


def test_a_merge_corrects_the_merged_patient_s_images_and_leaves_the_survivor_s_alone(plain):
    from worklist import services

    survivor = PatientFactory(patient_id="P-KEEP", name_alphabetic="Chen^Jie")
    duplicate = PatientFactory(patient_id="P-DUP", name_alphabetic="Chen^Jie")
    kept = dx_exam(survivor, "DX1", "DXCHEST")
    merged = dx_exam(duplicate, "DX2", "DXHAND")
    receive(dx_study(1, study_uid=kept.requested_procedure.study_instance_uid,
                     patient_id="P-KEEP"))
    receive(dx_study(1, study_uid=merged.requested_procedure.study_instance_uid,
                     patient_id="P-DUP"), ae_title="DX2")
    delivered()
    untouched = SpooledInstance.objects.get(step=kept)

    services.patient_merge(source=duplicate, target=survivor, actor=STAFF)

    moved = SpooledInstance.objects.get(step=merged)
    assert spooled(moved).PatientID == "P-KEEP"
    assert moved.deliveries.get().state == "PENDING"
    same = SpooledInstance.objects.get(pk=untouched.pk)
    assert same.path == untouched.path and same.deliveries.get().state == "STORED"
