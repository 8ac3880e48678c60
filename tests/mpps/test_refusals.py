"""Requests ris refuses: the PS3.4 / PS3.7 status with a readable Error Comment, nothing stored,
the step untouched, and the AE still serving the next request."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from mpps.models import PerformedProcedureStep, PerformedSeries, PPSStatus, StepLink
from tests.mpps.modality import series_item
from tests.mpps.mwl import worklist_accessions
from worklist.models import AuditEvent, OrderStatus, StepStatus

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.dcmtk,
    # The malformed datasets below are malformed on purpose; pydicom warns while building them.
    pytest.mark.filterwarnings("ignore:Invalid value for VR"),
    pytest.mark.filterwarnings("ignore:Unknown encoding"),
    pytest.mark.filterwarnings("ignore:With tag"),
]


def assert_step_untouched(step, port: int) -> None:
    """The refused N-CREATE left the step scheduled, its order SC, and it on the worklist."""
    step.refresh_from_db()
    order = step.requested_procedure.order
    order.refresh_from_db()
    assert (step.status, order.status) == (StepStatus.SCHEDULED, OrderStatus.SCHEDULED)
    assert not AuditEvent.objects.filter(action__startswith="pps.").exists()
    assert order.accession_number in worklist_accessions(port, station="CT01")


def test_duplicate_n_create_is_refused_with_0x0111(modality, scheduled_step):
    ds = modality.pps_for(scheduled_step)
    _, uid = modality.n_create(ds)
    stored = PerformedProcedureStep.objects.get(sop_instance_uid=uid).dataset

    again = modality.pps_for(scheduled_step)
    again.PerformedProcedureStepDescription = "something else"
    rsp, _ = modality.n_create(again, uid=uid)

    assert rsp.status == 0x0111
    assert rsp.comment == "A PPS with this SOP Instance UID exists already"
    assert PerformedProcedureStep.objects.get(sop_instance_uid=uid).dataset == stored
    assert StepLink.objects.filter(step=scheduled_step).count() == 1
    scheduled_step.refresh_from_db()
    assert scheduled_step.status == StepStatus.STARTED


def test_n_set_on_an_unknown_instance_is_refused_with_0x0112(modality):
    uid = generate_uid()
    rsp = modality.n_set(uid, modality.completed())
    assert rsp.status == 0x0112
    assert rsp.comment == "No PPS has this SOP Instance UID"
    assert not PerformedProcedureStep.objects.exists()


@pytest.mark.parametrize("final", ["COMPLETED", "DISCONTINUED"])
def test_n_set_after_a_final_status_is_refused_with_0x0110_and_error_id_a710(
    modality, scheduled_step, final
):
    _, uid = modality.n_create(modality.pps_for(scheduled_step))
    ending = modality.completed() if final == "COMPLETED" else modality.discontinued(None)
    modality.n_set(uid, ending)
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    series_before = list(pps.series.values_list("series_instance_uid", flat=True))

    late = Dataset()
    late.PerformedProcedureStepStatus = "IN PROGRESS"
    late.PerformedSeriesSequence = [series_item()]
    rsp = modality.n_set(uid, late)

    assert rsp.status == 0x0110
    assert rsp.error_id == 0xA710
    assert rsp.comment == f"PPS is {final}: it may no longer be updated"
    pps.refresh_from_db()
    assert pps.status == final
    assert list(pps.series.values_list("series_instance_uid", flat=True)) == series_before
    scheduled_step.refresh_from_db()
    order = scheduled_step.requested_procedure.order
    order.refresh_from_db()
    assert (scheduled_step.status, order.status) == (
        (StepStatus.COMPLETED, OrderStatus.COMPLETED)
        if final == "COMPLETED"
        else (StepStatus.DISCONTINUED, OrderStatus.DISCONTINUED)
    )
    assert order.accession_number not in worklist_accessions(modality.port, station="CT01")


def test_n_create_with_status_completed_is_refused_with_0x0106(modality, scheduled_step):
    ds = modality.pps_for(scheduled_step)
    ds.PerformedProcedureStepStatus = "COMPLETED"
    rsp, _ = modality.n_create(ds)
    assert rsp.status == 0x0106
    assert rsp.comment == "(0040,0252) must be IN PROGRESS at N-CREATE, not 'COMPLETED'"
    assert not PerformedProcedureStep.objects.exists()
    assert_step_untouched(scheduled_step, modality.port)


def test_n_create_without_scheduled_step_attributes_is_refused_with_0x0120(
    modality, scheduled_step
):
    ds = modality.pps_for(scheduled_step)
    del ds.ScheduledStepAttributesSequence
    rsp, _ = modality.n_create(ds)
    assert rsp.status == 0x0120
    assert rsp.comment == "Missing (0040,0270) ScheduledStepAttributesSequence"
    assert not PerformedProcedureStep.objects.exists()
    assert_step_untouched(scheduled_step, modality.port)


def _empty_ssas(ds):
    ds.ScheduledStepAttributesSequence = []


def _no_study_uid(ds):
    del ds.ScheduledStepAttributesSequence[0].StudyInstanceUID


def _bad_study_uid(ds):
    ds.ScheduledStepAttributesSequence[0].StudyInstanceUID = "1.2.abc"


def _no_pps_id(ds):
    del ds.PerformedProcedureStepID


def _empty_station_ae(ds):
    ds.PerformedStationAETitle = ""


def _bad_start_date(ds):
    ds.PerformedProcedureStepStartDate = "20241345"


def _bad_start_time(ds):
    ds.PerformedProcedureStepStartTime = "25:61"


def _no_modality(ds):
    del ds.Modality


def _unknown_character_set(ds):
    ds.SpecificCharacterSet = "ISO_IR 999"


def _series_without_protocol(ds):
    item = series_item()
    item.ProtocolName = ""
    ds.PerformedSeriesSequence = [item]


def _bad_timezone(ds):
    ds.TimezoneOffsetFromUTC = "0800"


def _nul_in_pps_id(ds):
    ds.PerformedProcedureStepID = "PPS\x001"


def _patient_id_over_lo(ds):
    ds.PatientID = "P" * 65


def _station_name_over_sh(ds):
    ds.PerformedStationName = "STATION-NAME-17CH"


def _name_group_over_pn(ds):
    ds.PatientName = "A" * 65 + "^B"


def _series_description_over_lo(ds):
    ds.PerformedSeriesSequence = [series_item()]
    ds.PerformedSeriesSequence[0].SeriesDescription = "d" * 65


MALFORMED_CREATES = [
    (_patient_id_over_lo, 0x0106, "(0010,0020) PatientID is longer than LO allows (64)"),
    (_nul_in_pps_id, 0x0106, "(0040,0253) PerformedProcedureStepID holds a NUL (0x00)"),
    (_station_name_over_sh, 0x0106, "(0040,0242) PerformedStationName is longer than SH allow"),
    (_name_group_over_pn, 0x0106, "(0010,0010) PatientName is longer than PN allows (64)"),
    (_series_description_over_lo, 0x0106, "(0008,103E) is longer than LO allows (64) in (0040"),
    (_empty_ssas, 0x0121, "(0040,0270) ScheduledStepAttributesSequence has no item"),
    (_no_study_uid, 0x0120, "Missing (0020,000D) StudyInstanceUID in (0040,0270) item 1"),
    (_bad_study_uid, 0x0106, "(0020,000D) StudyInstanceUID is not a UID in (0040,0270) item 1"),
    (_no_pps_id, 0x0120, "Missing (0040,0253) PerformedProcedureStepID"),
    (_empty_station_ae, 0x0121, "(0040,0241) PerformedStationAETitle is empty"),
    (_bad_start_date, 0x0106, "(0040,0244) '20241345' is not YYYYMMDD"),
    (_bad_start_time, 0x0106, "(0040,0245) '25:61' is not HHMMSS"),
    (_no_modality, 0x0120, "Missing (0008,0060) Modality"),
    (_unknown_character_set, 0x0106, "(0008,0005) 'ISO_IR 999' is not a known character set"),
    (_series_without_protocol, 0x0121, "(0018,1030) ProtocolName is empty in (0040,0340) item 1"),
    (_bad_timezone, 0x0106, "(0008,0201) '0800' is not +HHMM or -HHMM"),
]


def test_malformed_n_create_is_refused_with_a_readable_comment(modality, scheduled_step):
    # One association per case, one database reset for all: what each case answered is compared
    # as a whole, so a failure lists every case that went wrong.
    answered, expected = {}, {}
    for spoil, status, comment in MALFORMED_CREATES:
        ds = modality.pps_for(scheduled_step)
        spoil(ds)
        rsp, _ = modality.n_create(ds)
        answered[spoil.__name__] = (hex(rsp.status), rsp.comment[: len(comment)])
        expected[spoil.__name__] = (hex(status), comment)
        assert len(rsp.comment) <= 64
    assert answered == expected
    assert not PerformedProcedureStep.objects.exists()
    assert_step_untouched(scheduled_step, modality.port)


def _completed_without_end(ds):
    del ds.PerformedProcedureStepEndDate


def _completed_with_empty_end_time(ds):
    ds.PerformedProcedureStepEndTime = ""


def _completed_without_series(ds):
    del ds.PerformedSeriesSequence


def _completed_with_no_series_item(ds):
    ds.PerformedSeriesSequence = []


def _unknown_status(ds):
    ds.PerformedProcedureStepStatus = "FINISHED"


def _series_with_bad_uid(ds):
    ds.PerformedSeriesSequence[0].SeriesInstanceUID = "not-a-uid"


MALFORMED_SETS = [
    (_completed_without_end, 0x0120, "Missing (0040,0250) PerformedProcedureStepEndDate"),
    (_completed_with_empty_end_time, 0x0121, "(0040,0251) is empty but its pair is set"),
    (_completed_without_series, 0x0120, "COMPLETED needs (0040,0340) PerformedSeriesSequence"),
    (_completed_with_no_series_item, 0x0121, "COMPLETED needs an item in (0040,0340)"),
    (_unknown_status, 0x0106, "(0040,0252) 'FINISHED': use COMPLETED or DISCONTINUED"),
    (_series_with_bad_uid, 0x0106, "(0020,000E) SeriesInstanceUID is not a UID in (0040,0340)"),
]


def test_malformed_n_set_is_refused_and_changes_nothing(modality, scheduled_step):
    _, uid = modality.n_create(modality.pps_for(scheduled_step))
    before = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    answered, expected = {}, {}
    for spoil, status, comment in MALFORMED_SETS:
        final = modality.completed()
        spoil(final)
        rsp = modality.n_set(uid, final)
        answered[spoil.__name__] = (hex(rsp.status), rsp.comment[: len(comment)])
        expected[spoil.__name__] = (hex(status), comment)
    assert answered == expected
    after = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert (after.status, after.dataset, after.ended_at) == (
        PPSStatus.IN_PROGRESS,
        before.dataset,
        before.ended_at,
    )
    assert not PerformedSeries.objects.exists()
    scheduled_step.refresh_from_db()
    order = scheduled_step.requested_procedure.order
    order.refresh_from_db()
    assert (scheduled_step.status, order.status) == (StepStatus.STARTED, OrderStatus.IN_PROGRESS)
    assert order.accession_number not in worklist_accessions(modality.port, station="CT01")


UNDECODABLE = [
    # A sequence whose item claims 16 bytes and ends after 7: no tag where the next should be.
    (
        b"\x40\x00\x70\x02SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\x10\x00\x00\x00garbage",
        0x0110,
        "Attribute list cannot be decoded",
    ),
    # An element with a VR that does not exist.
    (b"\x40\x00\x53\x02ZZ\x04\x00abcd", 0x0106, "(0040,0253) cannot be read"),
]


@pytest.mark.parametrize("payload, status, comment", UNDECODABLE, ids=["truncated", "bad-vr"])
def test_undecodable_attribute_list_is_refused_and_the_ae_keeps_serving(
    modality, scheduled_step, payload, status, comment
):
    rsp = modality.send_raw("N-CREATE", generate_uid(), payload)
    assert (hex(rsp.status), rsp.comment[: len(comment)]) == (hex(status), comment)
    assert not PerformedProcedureStep.objects.exists()

    ok, _ = modality.n_create(modality.pps_for(scheduled_step))
    assert ok.status == 0x0000


@pytest.mark.parametrize("uid", ["1.2.3.x", "1.2.3.04", "1..2", "01.2"])
def test_invalid_affected_sop_instance_uid_is_refused_with_0x0117(
    modality, scheduled_step, uid
):
    rsp, _ = modality.n_create(modality.pps_for(scheduled_step), uid=uid)
    assert rsp.status == 0x0117
    assert "is not a valid SOP Instance UID" in rsp.comment
    assert not PerformedProcedureStep.objects.exists()


def test_n_set_changing_create_only_attributes_warns_0x0107_and_keeps_them(
    modality, scheduled_step
):
    _, uid = modality.n_create(modality.pps_for(scheduled_step))
    final = modality.completed()
    final.PerformedStationAETitle = "OTHER"
    final.PatientID = "CHANGED"
    rsp = modality.n_set(uid, final)

    assert rsp.status == 0x0107
    assert rsp.attribute_ids == [0x00100020, 0x00400241]
    assert rsp.comment == "not changed (set at N-CREATE only): (0010,0020), (0040,0241)"
    pps = PerformedProcedureStep.objects.get(sop_instance_uid=uid)
    assert pps.status == PPSStatus.COMPLETED
    patient = scheduled_step.requested_procedure.order.patient
    assert (pps.station_ae_title, pps.patient_id) == ("CT01", patient.patient_id)
    assert pps.dataset["00400241"]["Value"] == ["CT01"]


def test_n_set_repeating_create_only_attributes_unchanged_is_plain_success(
    modality, scheduled_step
):
    created = modality.pps_for(scheduled_step)
    _, uid = modality.n_create(created)
    final = modality.completed()
    # Some modalities resend the whole PPS with every N-SET.
    final.PerformedStationAETitle = created.PerformedStationAETitle
    final.PerformedProcedureStepID = created.PerformedProcedureStepID
    assert modality.n_set(uid, final).status == 0x0000
