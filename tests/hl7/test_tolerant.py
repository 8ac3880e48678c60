"""Tolerant where the standard is: values ris does not need to schedule never refuse a message.

End to end: a real ``ris serve``, the hl7 package's MLLP client as the HIS, ACKs read with
``hl7.parse``, and DCMTK findscu reading the worklist where the result shows there.
"""

from __future__ import annotations

import hl7
import pytest
from pydicom import Dataset

from ris.hl7.handler import derived_control_id
from ris.models import HL7Sender, InboundMessage
from tests.factories import first_step
from tests.hl7.conftest import read_ack, send
from tests.mwl.dcmtk import findscu
from worklist.models import Order, Patient, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)
Status = InboundMessage.Status


def message(
    control_id: str,
    *,
    sex: str = "F",
    birth: str = "19700101",
    start: str = "202612011000",
    version: str = "2.5.1",
    placer: str = "PL-T1",
    patient_class: str = "O",
    sender: str = "HIS",
) -> bytes:
    """An OMG^O19 (v2.5.1, TQ1) or ORM^O01 (v2.3.1, ORC-7) new order with the values under test."""
    omg = version >= "2.5"
    segments = [
        f"MSH|^~\\&|{sender}|HOSP|RIS|RAD|20261130120000||"
        f"{'OMG^O19^OMG_O19' if omg else 'ORM^O01'}|{control_id}|P|{version}",
        f"PID|1||PT-{placer}^^^HOSP^MR||Doe^Jane||{birth}|{sex}",
        f"PV1|1|{patient_class}|RAD",
        f"ORC|NW|{placer}^HIS" + ("" if omg else f"|||||^^^{start}^^R"),
    ]
    if omg:
        segments.append(f"TQ1|1||||||{start}||R")
    segments.append(f"OBR|1|{placer}^HIS||CTHEAD^CT head^L")
    return ("\r".join(segments) + "\r").encode()


def deliver(service, raw: bytes):
    return read_ack(send(service.mllp_port, raw))


def err_segments(raw: bytes) -> list:
    parsed = hl7.parse(raw.decode())
    return [segment for segment in parsed if str(segment[0]) == "ERR"]


def test_sex_outside_table_0001_is_stored_unknown_and_the_order_is_applied(
    hl7_service, catalogue
):
    ack = deliver(hl7_service, message("SEX-1", sex="2"))

    assert ack.code == "AA"
    [err] = err_segments(ack.raw)
    assert str(err[3][0][0]) == "103" and str(err[4]) == "W"
    assert "PID-8" in str(err[8]) and "'2'" in str(err[8])
    patient = Patient.objects.get()
    assert patient.sex == ""
    assert first_step(Order.objects.get()).status == StepStatus.SCHEDULED
    assert InboundMessage.objects.get().status == Status.PROCESSED


def test_v231_warning_is_an_err_1_in_the_aa(hl7_service, catalogue):
    ack = deliver(hl7_service, message("SEX-2", sex="1", version="2.3.1"))

    assert ack.code == "AA"
    [err] = err_segments(ack.raw)
    assert "103" in str(err[1])


def test_unknown_patient_class_is_kept_as_sent_with_a_warning(hl7_service, catalogue):
    ack = deliver(hl7_service, message("PC-1", patient_class="K"))

    assert ack.code == "AA"
    assert "PV1-2" in str(err_segments(ack.raw)[0][8])
    assert Patient.objects.get().visits.get().patient_class == "K"


def test_a_known_sex_gives_a_plain_aa(hl7_service, catalogue):
    ack = deliver(hl7_service, message("SEX-3", sex="M"))

    assert ack.code == "AA"
    assert err_segments(ack.raw) == []


def test_birth_year_is_kept_as_a_year_and_not_sent_as_a_day_to_the_worklist(
    hl7_service, catalogue
):
    ack = deliver(hl7_service, message("DOB-1", birth="1950", placer="PL-Y"))

    assert ack.code == "AA", ack.error
    patient = Patient.objects.get()
    assert patient.birth_date.isoformat() == "1950-01-01"
    assert patient.birth_date_precision == "Y"
    query = Dataset()
    query.PatientID = patient.patient_id
    query.PatientBirthDate = ""
    query.ScheduledProcedureStepSequence = [Dataset()]
    result = findscu(hl7_service.dicom_port, query=query)
    assert result.returncode == 0, result.output
    [item] = result.responses
    assert str(item.get("PatientBirthDate", "")) == ""


def test_birth_year_and_month_is_kept_with_month_precision(hl7_service, catalogue):
    assert deliver(hl7_service, message("DOB-2", birth="195003")).code == "AA"

    patient = Patient.objects.get()
    assert (patient.birth_date.isoformat(), patient.birth_date_precision) == ("1950-03-01", "M")


def test_a_full_birth_date_after_a_year_is_a_day_again(hl7_service, catalogue):
    deliver(hl7_service, message("DOB-3", birth="1950", placer="PL-D1"))
    deliver(hl7_service, message("DOB-4", birth="19500314", placer="PL-D2").replace(
        b"PT-PL-D2", b"PT-PL-D1"))

    patient = Patient.objects.get()
    assert (patient.birth_date.isoformat(), patient.birth_date_precision) == ("1950-03-14", "")


def test_start_time_of_only_a_month_leaves_the_exam_unscheduled_with_a_warning(
    hl7_service, catalogue
):
    ack = deliver(hl7_service, message("ST-1", start="202612"))

    assert ack.code == "AA"
    assert "TQ1-7" in str(err_segments(ack.raw)[0][8])
    assert first_step(Order.objects.get()).status == StepStatus.UNSCHEDULED


def test_offset_of_24_hours_or_more_is_a_data_type_error_not_an_internal_one(
    hl7_service, catalogue
):
    ack = deliver(hl7_service, message("TZ-1", start="202612011000+9999"))

    assert ack.code == "AE"
    assert "102" in ack.error and "207" not in ack.error
    assert "+9999" in ack.error
    assert not Order.objects.exists()


def test_valid_offset_is_applied(hl7_service, catalogue):
    assert deliver(hl7_service, message("TZ-2", start="202612011000+0800")).code == "AA"

    step = first_step(Order.objects.get())
    assert step.scheduled_start.isoformat() == "2026-12-01T02:00:00+00:00"


LONG_ID = "X" * 150


def test_control_id_longer_than_64_is_stored_whole_and_a_resend_gets_the_original_ack(
    hl7_service, catalogue
):
    raw = message(LONG_ID)
    first = send(hl7_service.mllp_port, raw)
    again = send(hl7_service.mllp_port, raw)

    assert read_ack(first).code == "AA"
    assert read_ack(first).control_id == LONG_ID
    assert again == first
    assert InboundMessage.objects.get(status=Status.PROCESSED).control_id == LONG_ID
    assert Order.objects.count() == 1


def test_two_control_ids_sharing_their_first_64_characters_are_two_messages(
    hl7_service, catalogue
):
    prefix = "Y" * 64
    assert deliver(hl7_service, message(prefix + "-1", placer="PL-L1")).code == "AA"
    assert deliver(hl7_service, message(prefix + "-2", placer="PL-L2")).code == "AA"
    assert Order.objects.count() == 2


def test_control_id_above_the_column_size_gets_a_clear_ar_and_nothing_is_stored(
    hl7_service, catalogue
):
    ack = deliver(hl7_service, message("Z" * 200))

    assert ack.code == "AR"
    assert "200 characters" in ack.text and "199" in ack.text
    assert not InboundMessage.objects.exists()
    assert not Patient.objects.exists()


def test_empty_control_id_is_refused_by_default(hl7_service, catalogue):
    ack = deliver(hl7_service, message("", sender="OPENMRS"))

    assert ack.code == "AR"
    assert "101" in ack.error
    assert not Order.objects.exists()


def test_sender_option_derives_a_stable_control_id_so_a_resend_is_recognised(
    hl7_service, catalogue
):
    # (Another name than the test above: the listener caches a sender's options for 10 s.)
    HL7Sender.objects.create(application="OMRS", derive_control_id=True)
    raw = message("", sender="OMRS", placer="PL-O1")

    first = send(hl7_service.mllp_port, raw)
    again = send(hl7_service.mllp_port, raw)

    assert read_ack(first).code == "AA"
    assert read_ack(first).control_id == ""  # MSA-2 echoes MSH-10 as sent
    assert again == first
    stored = InboundMessage.objects.get(status=Status.PROCESSED)
    assert stored.control_id == derived_control_id(raw)
    assert InboundMessage.objects.filter(status=Status.DUPLICATE).count() == 1
    # Another message of the same sender is a new one.
    assert deliver(hl7_service, message("", sender="OMRS", placer="PL-O2")).code == "AA"
    assert Order.objects.count() == 2
