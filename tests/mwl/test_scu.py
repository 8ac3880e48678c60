"""pynetdicom as the SCU: concurrent associations, malformed identifiers, and the bytes of the fast
encoder against pydicom's writer."""

from __future__ import annotations

import threading
from io import BytesIO

import pytest
from pydicom import Dataset
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import ModalityWorklistInformationFind

from tests.dimse import exchange
from tests.mwl.conftest import ACTIVE, committed, standard_worklist
from worklist.dicom import ResponseBuilder, row_for_step
from worklist.models import ScheduledProcedureStep

pytestmark = [pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        standard_worklist()
        yield ris_service.dicom_port


def _ae(title: str = "PYSCU") -> AE:
    ae = AE(ae_title=title)
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


def _query(**sps_keys) -> Dataset:
    ds = Dataset()
    ds.PatientID = ""
    item = Dataset()
    item.ScheduledProcedureStepID = ""
    for key, value in sps_keys.items():
        setattr(item, key, value)
    ds.ScheduledProcedureStepSequence = [item]
    return ds


def _find(assoc, query) -> tuple[list[Dataset], Dataset]:
    found, final = [], None
    for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
        if status is not None and status.Status in (0xFF00, 0xFF01):
            found.append(identifier)
        else:
            final = status
    return found, final


def test_twenty_concurrent_associations_all_get_their_worklist(port):
    results: list[set[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(20)

    def client(n: int) -> None:
        try:
            assoc = _ae(f"SCU{n}").associate("127.0.0.1", port, ae_title="RIS")
            assert assoc.is_established
            start.wait(timeout=30)
            found, final = _find(assoc, _query())
            assoc.release()
            assert final.Status == 0x0000
            results.append({str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)
                            for ds in found})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [ACTIVE] * 20


def _failure_then_success(port: int, bad: Dataset) -> Dataset:
    """Send a bad identifier, then a good one on the same association (it must still serve)."""
    assoc = _ae().associate("127.0.0.1", port, ae_title="RIS")
    assert assoc.is_established
    found, final = _find(assoc, bad)
    assert found == []
    again, ok = _find(assoc, _query(ScheduledStationAETitle="MR1"))
    assoc.release()
    assert ok.Status == 0x0000 and len(again) == 2
    return final


def test_an_invalid_date_is_refused_with_an_error_comment(port):
    final = _failure_then_success(port, _query(ScheduledProcedureStepStartDate="2030031x"))
    assert final.Status == 0xA900
    assert "date" in final.ErrorComment
    assert final.OffendingElement == 0x00400002


def test_a_refused_value_is_in_the_error_comment_but_not_in_the_log(port, ris_service):
    bad = _query()
    bad.PatientBirthDate = "1961O704"  # a birth date, mistyped: patient data all the same
    final = _failure_then_success(port, bad)
    assert final.Status == 0xA900 and "1961O704" in final.ErrorComment
    assert "(0010,0030) cannot be matched" in ris_service.log()
    assert "1961O704" not in ris_service.log()


def test_a_wildcard_in_a_uid_list_is_refused(port):
    bad = _query()
    bad.StudyInstanceUID = "1.2.3*"
    final = _failure_then_success(port, bad)
    assert final.Status == 0xA900 and "UID" in final.ErrorComment


def test_a_sequence_key_with_two_items_is_refused(port):
    bad = _query()
    bad.ScheduledProcedureStepSequence.append(Dataset())
    final = _failure_then_success(port, bad)
    assert final.Status == 0xA900 and "one item" in final.ErrorComment


def test_a_key_sent_with_the_wrong_value_representation_is_refused(port):
    bad = _query()
    bad.add_new(0x00100010, "SQ", [Dataset()])  # Patient's Name as a sequence
    final = _failure_then_success(port, bad)
    assert final.Status == 0xA900 and final.OffendingElement == 0x00100010


def test_a_time_range_with_a_bad_bound_is_refused(port):
    final = _failure_then_success(port, _query(ScheduledProcedureStepStartTime="25-26"))
    assert final.Status == 0xA900 and final.OffendingElement == 0x00400003


# --- the fast encoder writes exactly what pydicom writes ---------------------------------------


@pytest.mark.parametrize("charset", ["ISO_IR 192", "ISO_IR 100", "GB18030"])
@pytest.mark.parametrize(
    "implicit,little", [(True, True), (False, True), (False, False)],
    ids=["ivrle", "evrle", "evrbe"],
)
def test_fast_encoding_is_byte_identical_to_pydicom(port, django_db_blocker, charset, implicit,
                                                    little):
    with django_db_blocker.unblock():
        rows = [row_for_step(s) for s in ScheduledProcedureStep.objects.select_related(
            "station", "requested_procedure__order__patient", "requested_procedure__order__visit"
        )]
    assert len(rows) == 11
    builder = ResponseBuilder(None, character_set=charset)
    for row in rows:
        expected = encode(builder.dataset(row), implicit, little)
        assert builder.encode(row, implicit_vr=implicit, little_endian=little) == expected


def test_worklist_responses_answer_like_the_scp_for_other_callers(port, django_db_blocker):
    from worklist.selectors import worklist_responses

    query = _query(ScheduledStationAETitle="CT1")
    with django_db_blocker.unblock():
        answers = list(worklist_responses(query))
    assert [a.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for a in answers] == [
        "A01", "A02"
    ]
    assert {e.keyword for e in answers[0]} == {"PatientID", "ScheduledProcedureStepSequence"}


def _find_raw(port: int, payload: bytes) -> Dataset:
    """Send a C-FIND whose identifier is ``payload`` as is (bytes no encoder would produce)."""
    assoc = _ae().associate("127.0.0.1", port, ae_title="RIS")
    assert assoc.is_established
    try:
        context = assoc._get_valid_context(ModalityWorklistInformationFind, "", "scu")
        request = C_FIND()
        request.MessageID = 1
        request.AffectedSOPClassUID = ModalityWorklistInformationFind
        request.Priority = 2
        request.Identifier = BytesIO(payload)
        rsp = exchange(assoc, request, context.context_id)
        return rsp
    finally:
        assoc.release()


@pytest.mark.parametrize("payload", [
    b"\x40\x00\x53\x02ZZ\x04\x00abcd",  # (0040,0253) with a VR that does not exist
    # a Scheduled Procedure Step Sequence of undefined length that ends without its delimiter
    b"\x40\x00\x00\x01\xff\xff\xff\xff\xfe\xff\x00\xe0\x08\x00\x00\x00"
    b"\x08\x00\x50\x00\x00\x00\x00\x00",
], ids=["unknown-vr", "unterminated-sequence"])
def test_an_undecodable_identifier_gets_c000_with_a_comment_and_the_ae_keeps_serving(
    port, payload
):
    rsp = _find_raw(port, payload)
    assert rsp.Status == 0xC000
    assert rsp.ErrorComment == "the identifier could not be decoded"
    assoc = _ae().associate("127.0.0.1", port, ae_title="RIS")
    found, final = _find(assoc, _query(ScheduledStationAETitle="MR1"))
    assoc.release()
    assert final.Status == 0x0000 and len(found) == 2



def test_a_nul_inside_a_key_is_refused_naming_the_attribute(port):
    bad = _query()
    bad.PatientID = "PID\x0001"
    final = _failure_then_success(port, bad)
    assert final.Status == 0xA900 and "NUL" in final.ErrorComment
    assert final.OffendingElement == 0x00100020


def test_the_nul_padding_of_a_uid_is_not_a_nul_inside_it(port):
    query = _query()
    query.StudyInstanceUID = "1.2.3\x00"  # odd length, padded to even with a NUL (PS3.5 6.2)
    assoc = _ae().associate("127.0.0.1", port, ae_title="RIS")
    assert assoc.is_established
    try:
        statuses = [status.Status for status, _ in
                    assoc.send_c_find(query, ModalityWorklistInformationFind)]
    finally:
        assoc.release()
    assert statuses == [0x0000]  # matched as 1.2.3 (nothing here), not refused
