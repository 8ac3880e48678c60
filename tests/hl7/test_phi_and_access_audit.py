"""What a security officer checks end to end on a real ``ris serve``: patient names and IDs never
reach the log (above DEBUG), and the accesses that matter are in the audit trail instead: a
modality's worklist query (device, keys, match count), a patient record read in the web UI and
the API, an HL7 reprocess, an outbound retry."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from ris.models import InboundMessage, OutboundJob
from tests.hl7.conftest import orm, read_ack, send
from tests.mwl.dcmtk import findscu
from worklist.models import AuditEvent, Device, Patient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]

NAME = "Zqphifamily^Xavierphi"
NAME_ZH = "赵钱孙"
PATIENT_ID = "PHI-77031"


def _utf8(message: bytes) -> bytes:
    """The message with MSH-18 UNICODE UTF-8 (after MSH-12, the version)."""
    head, rest = message.split(b"\r", 1)
    return head + b"||||||UNICODE UTF-8\r" + rest


def _audit(action: str, timeout: float = 10.0) -> list[AuditEvent]:
    deadline = time.monotonic() + timeout
    while True:
        rows = list(AuditEvent.objects.filter(action=action).order_by("id"))
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _admin():
    from django.contrib.auth.models import User

    return User.objects.create_superuser("officer", password="correct horse battery")


def test_an_end_to_end_run_leaves_no_patient_name_or_id_in_the_log(hl7_service, catalogue):
    name = f"{NAME}={NAME_ZH}"
    ack = read_ack(send(hl7_service.mllp_port, _utf8(orm("PHI-1", "PL-PHI-1",
                                                          patient_id=PATIENT_ID, name=name))))
    assert ack.code == "AA", ack.text
    # refused orders are logged too: an unknown procedure code, the same patient
    refused = read_ack(send(hl7_service.mllp_port, _utf8(orm(
        "PHI-2", "PL-PHI-2", code="NOSUCH", patient_id=PATIENT_ID, name=name))))
    assert refused.code != "AA"
    result = findscu(hl7_service.dicom_port, ["PatientName=Zqphi*", "PatientID="],
                     calling_ae="CT1")
    assert result.patient_ids == [PATIENT_ID]
    findscu(hl7_service.dicom_port, ["PatientName=Zqphi[", "ScheduledProcedureStepSequence"])
    patient = Patient.objects.get(patient_id=PATIENT_ID)
    admin = _admin()
    browser = Client()
    browser.force_login(admin)
    assert browser.get(f"/patients/{patient.pk}/").status_code == 200
    time.sleep(1)
    log = hl7_service.log()
    for secret in ("Zqphifamily", "Xavierphi", NAME_ZH, PATIENT_ID):
        assert secret not in log, f"{secret!r} is in the log"


def test_a_worklist_query_is_audited_with_device_keys_and_match_count(hl7_service, catalogue):
    assert read_ack(send(hl7_service.mllp_port, orm("AUD-1", "PL-AUD-1",
                                                    patient_id="AUD-1"))).code == "AA"
    result = findscu(hl7_service.dicom_port, ["PatientID=AUD-1"], calling_ae="CT1")
    assert result.final == "Success"
    (row,) = _audit("mwl.query")
    assert (row.actor_type, row.actor, row.object_id) == ("AE", "CT1", "CT1")
    assert row.after["keys"] == {"PatientID": "AUD-1"}
    assert row.after["matches"] == len(result.responses) == 1
    assert row.after["peer"].startswith("127.0.0.1:")


def test_a_patient_record_read_is_audited_in_the_ui_and_the_api(hl7_service, catalogue):
    assert read_ack(send(hl7_service.mllp_port, orm("AUD-2", "PL-AUD-2",
                                                    patient_id="AUD-2"))).code == "AA"
    patient = Patient.objects.get(patient_id="AUD-2")
    admin = _admin()
    browser = Client()
    browser.force_login(admin)
    assert browser.get(f"/patients/{patient.pk}/").status_code == 200
    api = APIClient()
    api.force_authenticate(admin)
    assert api.get(f"/api/v1/patients/{patient.pk}/").status_code == 200
    reads = AuditEvent.objects.filter(action="patient.read", object_id=str(patient.pk))
    assert sorted(reads.values_list("actor", "detail")) == [("officer", "api"), ("officer", "web")]


def test_hl7_reprocess_and_outbound_retry_are_audited(hl7_service, catalogue):
    refused = read_ack(send(hl7_service.mllp_port, orm("AUD-3", "PL-AUD-3", code="NOSUCH")))
    assert refused.code != "AA"
    message = InboundMessage.objects.get(control_id="AUD-3")
    job = OutboundJob.objects.create(kind="hl7.order_status", destination="nowhere",
                                     payload={}, state=OutboundJob.State.FAILED)
    api = APIClient()
    api.force_authenticate(_admin())
    assert api.post(f"/api/v1/hl7-messages/{message.pk}/reprocess/").status_code == 200
    assert api.post(f"/api/v1/outbound-jobs/{job.pk}/retry/").status_code == 200
    (reprocess,) = AuditEvent.objects.filter(action="hl7.reprocess")
    assert (reprocess.actor, reprocess.object_id) == ("officer", str(message.pk))
    assert "AUD-3" in reprocess.detail
    (retry,) = AuditEvent.objects.filter(action="outbound.retry")
    assert (retry.actor, retry.object_id) == ("officer", str(job.pk))
    assert Device.objects.filter(ae_title="CT1").exists()
