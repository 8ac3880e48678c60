"""What a worklist response holds: the requested keys only, per IHE SWF return-key group, in the
calling Device's character set (bytes checked with dcmdump), and the Device's own limits.
"""

from __future__ import annotations

import pytest
from pydicom import Dataset

from tests.mwl.conftest import ACTIVE, committed, device, standard_worklist, uid
from tests.mwl.dcmtk import dcmdump, findscu, sps
from worklist.models import CharacterSet

pytestmark = [pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        standard_worklist()
        device("LATIN1SCU", character_set=CharacterSet.LATIN1)
        device("GB18030SCU", character_set=CharacterSet.GB18030)
        device("GB2312SCU", character_set=CharacterSet.GB2312)
        device("ASCIISCU", character_set=CharacterSet.ASCII)
        device("CT1", restrict_to_own_steps=True)
        device("NOQUERY", may_query_worklist=False)
        yield ris_service.dicom_port


def identifier(**top) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientID = "PID-01"
    for keyword, value in top.items():
        setattr(ds, keyword, value)
    return ds


def one(port: int, query: Dataset, **kwargs) -> Dataset:
    result = findscu(port, query=query, **kwargs)
    assert result.final == "Success", result.output
    assert len(result.responses) == 1, result.output
    return result.responses[0]


# --- requested keys only ----------------------------------------------------------------------


def test_a_response_holds_exactly_the_requested_keys(port):
    query = identifier(PatientName="")
    item = Dataset()
    item.ScheduledStationAETitle = ""
    query.ScheduledProcedureStepSequence = [item]
    response = one(port, query)
    assert {e.keyword for e in response} == {
        "SpecificCharacterSet", "PatientName", "PatientID", "ScheduledProcedureStepSequence"
    }
    assert [e.keyword for e in response.ScheduledProcedureStepSequence[0]] == [
        "ScheduledStationAETitle"
    ]


def test_a_requested_key_without_a_value_comes_back_empty_not_missing(port):
    response = one(port, identifier(MedicalAlerts="", PatientTransportArrangements=""))
    assert "MedicalAlerts" in response and response.MedicalAlerts == ""
    assert response.PatientTransportArrangements == "Wheelchair"


def test_an_unsupported_key_comes_back_empty(port):
    response = one(port, identifier(PatientAddress="", EthnicGroup=""))
    assert response.PatientAddress == "" and response.EthnicGroup == ""


def test_an_empty_sequence_key_returns_every_attribute_of_its_items(port):
    query = identifier()
    query.ScheduledProcedureStepSequence = []
    step = one(port, query).ScheduledProcedureStepSequence[0]
    assert step.ScheduledStationAETitle == "CT1"
    assert step.ScheduledProcedureStepID == "A01"
    assert step.ScheduledProtocolCodeSequence[0].CodeValue == "P-HEAD"


# --- IHE SWF return key groups (IHE RAD-TF-2 4.5.4.1.2.2, docs/conformance.md) -----------------


def test_scheduled_procedure_step_return_keys(port):
    query = identifier()
    item = Dataset()
    for keyword in (
        "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepStartTime", "ScheduledProcedureStepEndDate",
        "ScheduledProcedureStepEndTime", "Modality", "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepDescription", "ScheduledProcedureStepID", "ScheduledStationName",
        "ScheduledProcedureStepLocation", "PreMedication", "RequestedContrastAgent",
        "ScheduledProcedureStepStatus",
    ):
        setattr(item, keyword, "")
    code = Dataset()
    code.CodeValue = code.CodingSchemeDesignator = code.CodeMeaning = ""
    item.ScheduledProtocolCodeSequence = [code]
    query.ScheduledProcedureStepSequence = [item]
    step = one(port, query).ScheduledProcedureStepSequence[0]
    assert (step.ScheduledStationAETitle, step.Modality, step.ScheduledProcedureStepID) == (
        "CT1", "CT", "A01"
    )
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20300310", "090000"
    )
    assert (step.ScheduledProcedureStepEndDate, step.ScheduledProcedureStepEndTime) == (
        "20300310", "091500"
    )
    assert str(step.ScheduledPerformingPhysicianName) == "House^Gregory"
    assert step.ScheduledProcedureStepDescription == "CT head plain"
    assert step.ScheduledStationName == "CT1"
    assert step.ScheduledProcedureStepLocation == "Room 1"
    assert (step.PreMedication, step.RequestedContrastAgent) == ("None", "Iodine")
    assert step.ScheduledProcedureStepStatus == "SCHEDULED"
    protocol = step.ScheduledProtocolCodeSequence[0]
    assert (protocol.CodeValue, protocol.CodingSchemeDesignator, protocol.CodeMeaning) == (
        "P-HEAD", "L", "Head protocol"
    )


def test_requested_procedure_return_keys(port):
    code = Dataset()
    code.CodeValue = code.CodingSchemeDesignator = code.CodeMeaning = ""
    response = one(
        port,
        identifier(
            RequestedProcedureID="", RequestedProcedureDescription="", StudyInstanceUID="",
            RequestedProcedurePriority="", PatientTransportArrangements="",
            ReasonForTheRequestedProcedure="", NamesOfIntendedRecipientsOfResults="",
            RequestedProcedureCodeSequence=[code], ReferencedStudySequence=[],
        ),
    )
    assert response.RequestedProcedureID == "RP-A01"
    assert response.RequestedProcedureDescription == "CT head"
    assert response.StudyInstanceUID == uid("A01")
    assert response.RequestedProcedurePriority == "STAT"
    assert response.ReasonForTheRequestedProcedure == "Headache"
    assert response.NamesOfIntendedRecipientsOfResults == ""
    assert response.RequestedProcedureCodeSequence[0].CodeValue == "CTHEAD"
    assert len(response.ReferencedStudySequence) == 0


def test_imaging_service_request_return_keys(port):
    response = one(
        port,
        identifier(
            AccessionNumber="", RequestingPhysician="", ReferringPhysicianName="",
            RequestingService="", PlacerOrderNumberImagingServiceRequest="",
            FillerOrderNumberImagingServiceRequest="", ImagingServiceRequestComments="",
            IssuerOfAccessionNumberSequence=[],
        ),
    )
    assert response.AccessionNumber == "ACC-A01"
    assert str(response.RequestingPhysician) == "Ross^Doug"
    assert str(response.ReferringPhysicianName) == "Grey^Meredith"
    assert response.RequestingService == "Neuro"
    assert response.PlacerOrderNumberImagingServiceRequest == "PL-1"
    assert response.FillerOrderNumberImagingServiceRequest == "FL-1"
    assert response.ImagingServiceRequestComments == "Fasting"
    assert len(response.IssuerOfAccessionNumberSequence) == 0


def test_visit_return_keys(port):
    response = one(
        port,
        identifier(
            AdmissionID="", CurrentPatientLocation="", InstitutionName="",
            ReferencedPatientSequence=[],
        ),
    )
    assert (response.AdmissionID, response.CurrentPatientLocation) == ("ADM-1", "Ward 3")
    assert "InstitutionName" in response and len(response.ReferencedPatientSequence) == 0


def test_patient_return_keys(port):
    response = one(
        port,
        identifier(
            PatientName="", IssuerOfPatientID="", PatientBirthDate="", PatientSex="",
            PatientWeight="", PatientSize="", PatientState="", PregnancyStatus=None,
            MedicalAlerts="", Allergies="", SpecialNeeds="", AdditionalPatientHistory="",
            ConfidentialityConstraintOnPatientDataDescription="", OtherPatientIDsSequence=[],
        ),
    )
    assert str(response.PatientName) == "Wang^XiaoDong=王^小东=wang^xiao dong"
    assert response.IssuerOfPatientID == "HOSP"
    assert (response.PatientBirthDate, response.PatientSex) == ("19800312", "M")
    assert (float(response.PatientWeight), float(response.PatientSize)) == (70.5, 1.75)
    assert (response.PatientState, response.PregnancyStatus) == ("Ambulant", 4)
    assert (response.Allergies, response.SpecialNeeds) == ("Iodine", "Interpreter")
    assert response.AdditionalPatientHistory == "Migraine since 2020"
    assert response.ConfidentialityConstraintOnPatientDataDescription == "VIP"
    assert response.OtherPatientIDsSequence[0].PatientID == "SSN-9"


def test_timezone_offset_is_returned_with_a_value_when_asked(port):
    response = one(port, identifier(TimezoneOffsetFromUTC=""))
    assert response.TimezoneOffsetFromUTC == "+0000"


# --- character sets: bytes checked with dcmdump -------------------------------------------------


def name_response(port: int, patient_id: str, calling_ae: str):
    query = Dataset()
    query.PatientID = patient_id
    query.PatientName = ""
    result = findscu(port, query=query, calling_ae=calling_ae)
    assert result.final == "Success", result.output
    (raw,) = result.raw
    return result.responses[0], raw


def test_answers_in_utf8_by_default(port):
    response, raw = name_response(port, "PID-01", "UNKNOWNSCU")
    assert "王^小东".encode() in raw
    assert "(0008,0005) CS [ISO_IR 192]" in dcmdump(raw)
    assert str(response.PatientName) == "Wang^XiaoDong=王^小东=wang^xiao dong"


def test_plain_ascii_answers_carry_no_character_set(port):
    response, raw = name_response(port, "PID-02", "UNKNOWNSCU")
    assert "(0008,0005)" not in dcmdump(raw)
    assert str(response.PatientName) == "Smith^John"


def test_latin1_device_gets_latin1_bytes(port):
    response, raw = name_response(port, "PID-03", "LATIN1SCU")
    assert b"M\xfcller^Anna" in raw
    assert "(0008,0005) CS [ISO_IR 100]" in dcmdump(raw)


def test_a_name_latin1_cannot_hold_falls_back_to_utf8_and_says_so(port):
    response, raw = name_response(port, "PID-01", "LATIN1SCU")
    assert "(0008,0005) CS [ISO_IR 192]" in dcmdump(raw)
    assert "王^小东".encode() in raw and b"?" not in raw.split(b"Wang")[1][:30]


def test_gb18030_device_gets_gb18030_bytes(port):
    response, raw = name_response(port, "PID-01", "GB18030SCU")
    assert "王^小东".encode("gb18030") in raw
    assert "(0008,0005) CS [GB18030]" in dcmdump(raw)
    assert "Wang^XiaoDong=王^小东=wang^xiao dong" in dcmdump(raw, "+U8")


def test_gb2312_device_gets_iso2022_escape_sequences(port):
    response, raw = name_response(port, "PID-01", "GB2312SCU")
    assert b"\x1b$)A" in raw  # ESC $ ) A designates GB2312 (ISO-IR 58) to G1
    assert "王".encode("gb2312") in raw
    assert r"(0008,0005) CS [\ISO 2022 IR 58]" in dcmdump(raw)
    assert "Wang^XiaoDong=王^小东=wang^xiao dong" in dcmdump(raw, "+U8")


def test_a_query_in_gb18030_is_decoded(port):
    query = Dataset()
    query.SpecificCharacterSet = "GB18030"
    query.PatientName = "王*"
    query.PatientID = ""
    result = findscu(port, query=query)
    assert result.patient_ids == ["PID-01"]


def test_a_query_in_latin1_is_decoded(port):
    query = Dataset()
    query.SpecificCharacterSet = "ISO_IR 100"
    query.PatientName = "Müller*"
    query.PatientID = ""
    result = findscu(port, query=query)
    assert result.patient_ids == ["PID-03"]


def test_ascii_only_device_gets_utf8_for_names_beyond_ascii(port):
    response, raw = name_response(port, "PID-03", "ASCIISCU")
    assert "Müller".encode() in raw
    assert "(0008,0005) CS [ISO_IR 192]" in dcmdump(raw)


# --- the calling Device ------------------------------------------------------------------------


def test_a_device_restricted_to_its_own_steps_sees_only_its_station(port):
    result = findscu(port, sps(ScheduledProcedureStepID="", ScheduledStationAETitle=""),
                     calling_ae="CT1")
    assert result.sps_ids == {"A01", "A02"}
    assert findscu(port, sps(ScheduledProcedureStepID=""), calling_ae="OTHER").sps_ids == ACTIVE


def test_a_device_restricted_to_its_own_steps_cannot_ask_for_another_station(port):
    result = findscu(port, sps(ScheduledProcedureStepID="", ScheduledStationAETitle="MR1"),
                     calling_ae="CT1")
    assert result.final == "Success" and result.sps_ids == set()


def test_a_device_not_allowed_to_query_is_refused(port):
    result = findscu(port, ["PatientID="], calling_ae="NOQUERY")
    assert result.responses == []
    assert "0x124" in result.final, result.output  # Refused: Not Authorised (PS3.7 C.4)
