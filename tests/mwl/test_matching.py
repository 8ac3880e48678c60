"""PS3.4 C.2.2.2 matching, one rule per test, asked by DCMTK findscu -W of a running ris serve.

The worklist of tests/mwl/conftest.py::standard_worklist: day 0 is 2030-03-10 (TIME_ZONE UTC).
"""

from __future__ import annotations

import pytest

from tests.mwl.conftest import ACTIVE, committed, standard_worklist, uid
from tests.mwl.dcmtk import findscu, sps

pytestmark = [pytest.mark.dcmtk]

D0, D1, D2, DM1 = "20300310", "20300311", "20300312", "20300309"


@pytest.fixture(scope="module")
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        standard_worklist()
        yield ris_service.dicom_port


def found(port: int, *keys: str) -> set[str]:
    result = findscu(
        port, ["SpecificCharacterSet=ISO_IR 192", *keys, *sps(ScheduledProcedureStepID="")]
    )
    assert result.final == "Success", result.output
    return result.sps_ids


def test_universal_query_returns_every_step_on_the_worklist(port):
    assert found(port) == ACTIVE


def test_canceled_and_completed_steps_appear_only_when_their_status_is_asked(port):
    assert found(port, *sps(ScheduledProcedureStepStatus="CANCELED")) == {"A07"}
    assert found(port, *sps(ScheduledProcedureStepStatus="COMPLETED")) == {"A08"}
    assert found(port, *sps(ScheduledProcedureStepStatus="ARRIVED")) == {"A06"}


def test_single_value_matches_the_whole_value_only(port):
    assert found(port, "PatientID=PID-02") == {"A02"}
    assert found(port, "PatientID=PID-0") == set()


def test_single_value_of_a_code_string_is_case_sensitive(port):
    assert found(port, *sps(Modality="CT")) == {"A01", "A02"}
    assert found(port, *sps(Modality="ct")) == set()


def test_scheduled_station_ae_title_matches_its_steps(port):
    assert found(port, *sps(ScheduledStationAETitle="MR1")) == {"A03", "A04"}


def test_star_matches_any_run_of_characters(port):
    assert found(port, "PatientID=PID-1*") == {"A10", "A11"}
    assert found(port, "AccessionNumber=*A0*") == ACTIVE - {"A10", "A11"}


def test_question_mark_matches_exactly_one_character(port):
    assert found(port, "PatientID=PID-0?") == ACTIVE - {"A10", "A11"}
    assert found(port, "PatientID=PID-?") == set()


def test_sql_like_characters_in_a_value_are_taken_literally(port):
    assert found(port, "PatientName=O'Brien_50%*") == {"A05"}
    assert found(port, "PatientName=*%*") == {"A05"}
    assert found(port, "PatientName=*_*") == {"A05"}


def test_glob_brackets_in_a_value_are_taken_literally(port):
    assert found(port, "PatientName=[B]*") == {"A09"}


def test_date_single_value_matches_that_day(port):
    assert found(port, *sps(ScheduledProcedureStepStartDate=D0)) == {"A01", "A02", "A09", "A10"}


def test_date_range_includes_both_bounds(port):
    assert found(port, *sps(ScheduledProcedureStepStartDate=f"{D0}-{D1}")) == {
        "A01", "A02", "A09", "A10", "A03", "A04"
    }


def test_date_range_without_upper_bound_means_on_or_after(port):
    assert found(port, *sps(ScheduledProcedureStepStartDate=f"{D1}-")) == {
        "A03", "A04", "A05", "A06"
    }


def test_date_range_without_lower_bound_means_on_or_before(port):
    assert found(port, *sps(ScheduledProcedureStepStartDate=f"-{D0}")) == {
        "A11", "A01", "A02", "A09", "A10"
    }


def test_time_range_alone_applies_to_every_day(port):
    assert found(port, *sps(ScheduledProcedureStepStartTime="0800-0930")) == {"A01", "A03"}


def test_time_single_value_matches_by_meaning_not_as_text(port):
    assert found(port, *sps(ScheduledProcedureStepStartTime="090000")) == {"A01"}
    assert found(port, *sps(ScheduledProcedureStepStartTime="0900")) == {"A01"}


def test_time_range_alone_never_crosses_midnight(port):
    assert found(port, *sps(ScheduledProcedureStepStartTime="2200-0100")) == set()


def test_date_range_and_time_range_together_are_one_datetime_range(port):
    # 10th 12:00 up to 11th 09:00, not 12:00-09:00 on each day.
    keys = sps(
        ScheduledProcedureStepStartDate=f"{D0}-{D1}", ScheduledProcedureStepStartTime="1200-0900"
    )
    assert found(port, *keys) == {"A02", "A09", "A10", "A03"}


def test_single_date_with_time_range_is_both_conditions(port):
    keys = sps(ScheduledProcedureStepStartDate=D0, ScheduledProcedureStepStartTime="1400-1630")
    assert found(port, *keys) == {"A02", "A09", "A10"}


def test_uid_list_matches_any_of_its_uids(port):
    assert found(port, f"StudyInstanceUID={uid('A01')}\\{uid('A05')}") == {"A01", "A05"}


def test_patient_name_matches_the_ideographic_group(port):
    assert found(port, "PatientName=王^小东") == {"A01"}
    assert found(port, "PatientName=李*") == {"A06"}


def test_patient_name_matches_the_phonetic_group(port):
    assert found(port, "PatientName=wang^xiao dong") == {"A01"}


def test_patient_name_is_case_insensitive_by_default(port):
    assert found(port, "PatientName=SMITH*") == {"A02", "A04"}
    assert found(port, "PatientName=müller^anna") == {"A03"}
    assert found(port, "PatientName=MÜLLER*") == {"A03"}


def test_patient_name_with_groups_matches_group_by_group(port):
    assert found(port, "PatientName=Wang^XiaoDong=王^小东") == {"A01"}
    assert found(port, "PatientName=Wang*=李*") == set()


def test_patient_name_wildcard_on_the_given_name_component(port):
    assert found(port, "PatientName=Smith^*") == {"A02", "A04"}
    assert found(port, "PatientName=Brown^B?b") == {"A10"}


def test_sequence_item_matches_when_all_its_keys_match(port):
    assert found(port, *sps(ScheduledStationAETitle="CT1", Modality="MR")) == set()
    assert found(port, *sps(ScheduledStationAETitle="CT1", Modality="CT")) == {"A01", "A02"}


def test_scheduled_protocol_code_sequence_matches_inside_the_step(port):
    key = "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0].CodeValue"
    assert found(port, f"{key}=P-HEAD") == {"A01"}
    assert found(port, f"{key}=P-*") == {"A01"}
    assert found(port, f"{key}=OTHER") == set()


def test_requested_procedure_code_sequence_matches(port):
    assert found(port, "RequestedProcedureCodeSequence[0].CodeValue=CTHEAD") == {"A01"}


def test_an_empty_attribute_matches_only_universal_matching(port):
    assert found(port, *sps(ScheduledPerformingPhysicianName="House*")) == {"A01"}
    assert found(port, *sps(ScheduledPerformingPhysicianName="*")) == ACTIVE


def test_referring_physician_name_matches(port):
    assert found(port, "ReferringPhysicianName=grey^meredith") == {"A01"}


def test_an_unlabelled_utf8_query_is_read_as_utf8(port):
    # Without (0008,0005) the bytes should be ASCII; modalities set to UTF-8 send them anyway.
    result = findscu(port, ["PatientName=王^小东", *sps(ScheduledProcedureStepID="")])
    assert result.sps_ids == {"A01"}
