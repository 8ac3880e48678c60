"""HL7 messages, the outbound queue and destinations: the admin's view of the integrations."""

from __future__ import annotations

import pytest

from mpps.forwarding.models import PacsDestination
from ris.hl7 import handler
from ris.models import HL7Destination, InboundMessage, OutboundJob
from tests.factories import ProcedureTypeFactory
from worklist.models import AuditEvent, Order

pytestmark = pytest.mark.django_db

MESSAGES = "/api/v1/hl7-messages/"
JOBS = "/api/v1/outbound-jobs/"


def _orm(control_id: str, code: str) -> bytes:
    segments = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ORM^O01|{control_id}|P|2.3.1",
        "PID|1||P7001^^^HOSP^MR||Li^Na||19920704|F",
        "PV1|1|O|RAD",
        "ORC|NW|PL-API-1^HIS||||||^^^202612011000^^R",
        f"OBR|1|PL-API-1^HIS||{code}^{code} exam^L",
    ]
    return ("\r".join(segments) + "\r").encode()


def _received(control_id: str, code: str) -> InboundMessage:
    """A message as the MLLP listener hands it to the HL7 handler (no socket needed here)."""
    handler.handle(_orm(control_id, code), "127.0.0.1:5000")
    return InboundMessage.objects.get(control_id=control_id)


def test_admin_reads_a_failed_message_with_its_text_and_ack(admin):
    message = _received("C-1", "NOSUCH")
    assert message.status == InboundMessage.Status.ERROR
    listed = admin.get(MESSAGES, {"status": "ERROR"}).json()["results"]
    assert [row["control_id"] for row in listed] == ["C-1"]
    detail = admin.get(f"{MESSAGES}{message.pk}/").json()
    assert detail["text"].startswith("MSH|^~\\&|HIS|HOSP")
    assert "MSA|AE|C-1" in detail["ack_text"]


def test_a_failed_message_is_reprocessed_once_the_catalogue_knows_its_code(admin):
    message = _received("C-2", "XRCHEST")
    ProcedureTypeFactory(code_value="XRCHEST", code_scheme="L")
    response = admin.post(f"{MESSAGES}{message.pk}/reprocess/", format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == InboundMessage.Status.PROCESSED
    assert Order.objects.filter(placer_order_number="PL-API-1").exists()


def test_reprocessing_a_processed_message_is_a_409(admin):
    ProcedureTypeFactory(code_value="CTHEAD", code_scheme="L")
    message = _received("C-3", "CTHEAD")
    assert message.status == InboundMessage.Status.PROCESSED
    response = admin.post(f"{MESSAGES}{message.pk}/reprocess/", format="json")
    assert response.status_code == 409
    assert "only messages in ERROR" in response.json()["detail"]


def test_hl7_messages_are_for_admins_only(technologist):
    assert technologist.get(MESSAGES).status_code == 403


def test_a_failed_outbound_job_is_put_back_in_the_queue(admin):
    job = OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", state=OutboundJob.State.FAILED, attempts=20
    )
    response = admin.post(f"{JOBS}{job.pk}/retry/", format="json")
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["attempts"]) == ("PENDING", 0)


def test_retrying_a_job_that_did_not_fail_is_a_409(admin):
    job = OutboundJob.objects.create(kind="hl7.order_status", state=OutboundJob.State.DONE)
    response = admin.post(f"{JOBS}{job.pk}/retry/", format="json")
    assert response.status_code == 409
    job.refresh_from_db()
    assert job.state == OutboundJob.State.DONE


def test_a_failed_outbound_job_is_superseded_with_a_reason(admin):
    job = OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", state=OutboundJob.State.FAILED, attempts=20
    )
    assert admin.post(f"{JOBS}{job.pk}/supersede/", {}, format="json").status_code == 400
    response = admin.post(
        f"{JOBS}{job.pk}/supersede/", {"reason": "replaced by the CM"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["state"] == "SUPERSEDED"
    again = admin.post(f"{JOBS}{job.pk}/supersede/", {"reason": "again"}, format="json")
    assert again.status_code == 409


def test_outbound_jobs_are_filtered_by_state(admin):
    OutboundJob.objects.create(kind="a", state=OutboundJob.State.FAILED)
    OutboundJob.objects.create(kind="b", state=OutboundJob.State.DONE)
    rows = admin.get(JOBS, {"state": "FAILED"}).json()["results"]
    assert [row["kind"] for row in rows] == ["a"]


def test_admin_adds_an_hl7_destination_and_the_trail_records_it(admin):
    response = admin.post(
        "/api/v1/hl7-destinations/",
        {"name": "HIS", "host": "his.example", "port": 2575, "version": "2.5.1"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    destination = HL7Destination.objects.get(name="HIS")
    assert AuditEvent.objects.filter(
        action="hl7destination.create", object_id=str(destination.pk)
    ).exists()


def test_a_pacs_destination_needs_a_valid_ae_title_and_port(admin):
    response = admin.post(
        "/api/v1/pacs-destinations/",
        {"name": "PACS", "ae_title": "NOT A\\VALID AE", "host": "pacs", "port": 0},
        format="json",
    )
    assert response.status_code == 400
    assert set(response.json()) == {"ae_title", "port"}
    assert not PacsDestination.objects.exists()


def test_destinations_are_for_admins_only(desk):
    assert desk.get("/api/v1/pacs-destinations/").status_code == 403
