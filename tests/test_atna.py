"""IHE ATNA: ris's audit trail reaches an audit record repository as DICOM audit messages
(PS3.15 A.5) in RFC 5424 syslog, over TLS with client certificates (RFC 5425, ITI-19) and over
UDP (RFC 5426), through the durable outbound queue.

The repository is ``tests.syslog_receiver``: a plain socket server (no packaged syslog receiver
is installed here) that parses the frames and checks each message against the audit schema's
required structure, plus the participants each PS3.15 A.5.3 event asks for.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from ris import atna, outbound_queue
from ris.models import OutboundJob
from tests.factories import PatientFactory, make_order
from tests.pki import make_ca, make_certificate
from tests.syslog_receiver import SyslogReceiver, event_id, validate_audit_message
from worklist import services
from worklist.audit import Actor
from worklist.models import AuditEvent, Device

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("atna-pki")
    make_ca(directory)
    make_certificate(directory, "repository", "/CN=localhost")
    make_certificate(directory, "ris", "/CN=ris/O=Radiology")
    return directory


def _repository_context(pki: Path) -> ssl.SSLContext:
    """The repository's side of ITI-19: its certificate, and ris's certificate required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "repository.crt", pki / "repository.key")
    context.load_verify_locations(pki / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def tls_repository(settings, pki):
    with SyslogReceiver(tls=_repository_context(pki)) as receiver:
        settings.RIS_ATNA_REPOSITORY = f"tls://localhost:{receiver.port}"
        settings.RIS_ATNA_TLS_CA = str(pki / "ca.crt")
        settings.RIS_ATNA_TLS_CERT = str(pki / "ris.crt")
        settings.RIS_ATNA_TLS_KEY = str(pki / "ris.key")
        yield receiver


@pytest.fixture
def udp_repository(settings):
    with SyslogReceiver() as receiver:
        settings.RIS_ATNA_REPOSITORY = f"udp://127.0.0.1:{receiver.port}"
        yield receiver


def _atna_jobs():
    return OutboundJob.objects.filter(kind=atna.JOB_KIND)


def test_logins_reach_the_repository_over_tls_as_user_authentication(tls_repository):
    User.objects.create_user("desk", password=PASSWORD)
    client = Client()
    client.post("/accounts/login/", {"username": "desk", "password": "guess"})
    client.post("/accounts/login/", {"username": "desk", "password": PASSWORD})
    client.post("/accounts/logout/")
    assert _atna_jobs().count() == 3
    outbound_queue.drain()

    messages = tls_repository.wait_for(3)
    assert tls_repository.errors == []
    assert [event_id(m) for m in messages] == ["110114"] * 3
    outcomes = [m.xml.find("EventIdentification").get("EventOutcomeIndicator") for m in messages]
    assert outcomes == ["4", "0", "0"]
    types = [m.xml.find("EventIdentification/EventTypeCode").get("originalText")
             for m in messages]
    assert types == ["Login", "Login", "Logout"]
    failed = messages[0]
    # ITI-20: facility 10 (security), a failure sent as warning; MSGID of the format
    assert failed.pri == 10 * 8 + 4 and messages[1].pri == 10 * 8 + 5
    assert failed.msgid == "IHE+RFC-3881" and failed.app_name == "ris"
    requestor = failed.xml.find("ActiveParticipant")
    assert requestor.get("UserIsRequestor") == "true"
    assert requestor.get("NetworkAccessPointID") == "127.0.0.1"
    assert failed.xml.find("ParticipantObjectIdentification").get("ParticipantObjectID") == "desk"
    assert set(_atna_jobs().values_list("state", flat=True)) == {OutboundJob.State.DONE}


def test_patient_record_changes_and_reads_name_the_patient_over_udp(udp_repository, rf):
    patient = PatientFactory(patient_id="PID77", issuer="HOSP")
    services.patient_viewed(patient=patient, actor=Actor.system("test"), channel="web")
    order = make_order(patient=patient)
    outbound_queue.drain()

    messages = udp_repository.wait_for(3)
    assert udp_repository.errors == []
    by_event = {}
    for message in messages:
        by_event.setdefault(message.xml.find("EventIdentification/EventID").get("originalText"),
                            []).append(message)
    read = by_event["Patient Record"][0]
    assert read.xml.find("EventIdentification").get("EventActionCode") == "R"
    patient_object = read.xml.find("ParticipantObjectIdentification")
    assert patient_object.get("ParticipantObjectID") == "PID77^^^&HOSP&L"
    assert patient_object.get("ParticipantObjectTypeCode") == "1"  # person
    assert patient_object.get("ParticipantObjectTypeCodeRole") == "1"  # patient
    assert patient_object.find("ParticipantObjectIDTypeCode").get("csd-code") == "2"
    assert "Order Record" in by_event and "Procedure Record" in by_event
    created = by_event["Order Record"][0]
    assert created.xml.find("EventIdentification").get("EventActionCode") == "C"
    assert created.xml.find("ParticipantObjectIdentification").get(
        "ParticipantObjectID") == "PID77^^^&HOSP&L"
    assert order.patient_id == patient.pk


def test_a_worklist_query_carries_its_keys_and_match_count(udp_repository):
    services.worklist_queried(actor=Actor.ae("CT1"), device="CT1",
                              keys={"PatientName": "DOE*", "Modality": "CT"}, matches=4,
                              peer="10.0.0.5:40000")
    outbound_queue.drain()
    [message] = udp_repository.wait_for(1)
    assert event_id(message) == "110112"
    requestor = message.xml.find("ActiveParticipant")
    assert requestor.get("UserID") == "CT1"
    assert requestor.get("NetworkAccessPointID") == "10.0.0.5"
    query = message.xml.find("ParticipantObjectIdentification")
    assert query.get("ParticipantObjectID") == atna.MWL_FIND_SOP_CLASS
    text = base64.b64decode(query.find("ParticipantObjectQuery").text).decode()
    assert text == "Modality=CT\nPatientName=DOE*"
    detail = query.find("ParticipantObjectDetail")
    assert detail.get("type") == "matches" and base64.b64decode(detail.get("value")) == b"4"


def test_messages_wait_in_the_queue_while_the_repository_is_down(settings, pki):
    with SyslogReceiver(tls=_repository_context(pki)) as receiver:
        port = receiver.port
    # The repository is gone (its port closed): the message stays queued, retried later.
    settings.RIS_ATNA_REPOSITORY = f"tls://localhost:{port}"
    settings.RIS_ATNA_TLS_CA = str(pki / "ca.crt")
    settings.RIS_ATNA_TLS_CERT = str(pki / "ris.crt")
    settings.RIS_ATNA_TLS_KEY = str(pki / "ris.key")
    services.exported(actor=Actor.system("test"), kind="print", what="day plan")
    outbound_queue.drain()
    job = _atna_jobs().get()
    assert job.state == OutboundJob.State.PENDING and job.attempts == 1
    assert "unreachable" in job.last_error

    with SyslogReceiver(tls=_repository_context(pki)) as receiver:
        settings.RIS_ATNA_REPOSITORY = f"tls://localhost:{receiver.port}"
        _atna_jobs().update(next_attempt_at=timezone.now())
        outbound_queue.drain()
        [message] = receiver.wait_for(1)
    assert event_id(message) == "110106"  # Export
    assert _atna_jobs().get().state == OutboundJob.State.DONE


def test_a_repository_with_an_untrusted_certificate_gets_nothing(settings, tmp_path, pki):
    make_ca(tmp_path, "rogue", "/CN=Rogue CA")
    make_certificate(tmp_path, "impostor", "/CN=localhost", ca="rogue")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "impostor.crt", tmp_path / "impostor.key")
    with SyslogReceiver(tls=context) as impostor:
        settings.RIS_ATNA_REPOSITORY = f"tls://localhost:{impostor.port}"
        settings.RIS_ATNA_TLS_CA = str(pki / "ca.crt")
        services.exported(actor=Actor.system("test"), kind="print", what="day plan")
        outbound_queue.drain()
        assert impostor.messages == []
    job = _atna_jobs().get()
    assert job.state == OutboundJob.State.PENDING and "certificate" in job.last_error


def test_nothing_is_queued_when_no_repository_is_configured(settings):
    settings.RIS_ATNA_REPOSITORY = ""
    PatientFactory()
    services.exported(actor=Actor.system("test"), kind="print", what="day plan")
    assert not _atna_jobs().exists()


def _row(action: str, object_type: str = "x", object_id: str = "1", after=None) -> AuditEvent:
    return AuditEvent(actor_type="USER", actor="alice", action=action, object_type=object_type,
                      object_id=object_id, after=after, detail="d", at=timezone.now())


@pytest.mark.parametrize("action", sorted(atna._ACCESS_EVENTS))
def test_every_access_event_is_a_valid_audit_message(action):
    from xml.etree import ElementTree as ET

    after = {"address": "10.0.0.1", "keys": {"PatientID": "1"}, "matches": 1, "instances": 3,
             "patient_id": "PID1", "destination": "PACS", "peer": "10.0.0.2:104"}
    text = atna.message(_row(action, after=after))
    validate_audit_message(ET.fromstring(text))


@pytest.mark.parametrize("action,object_type,expected", [
    ("patient.create", "worklist.Patient", ("110110", "C")),
    ("visit.update", "worklist.Visit", ("110110", "U")),
    ("order.status", "worklist.Order", ("110109", "U")),
    ("step.book", "worklist.ScheduledProcedureStep", ("110111", "C")),
    ("pps.create", "mpps.PerformedProcedureStep", ("110111", "C")),
    ("device.update", "worklist.Device", ("110113", "E")),
    ("hl7destination.delete", "ris.HL7Destination", ("110113", "E")),
])
def test_changes_map_to_their_atna_event(action, object_type, expected):
    from xml.etree import ElementTree as ET

    row = _row(action, object_type)
    event = atna.event_for(row)
    assert (event.event_id.code, event.action) == expected
    validate_audit_message(ET.fromstring(atna.message(row)))


def test_configuration_changes_are_security_alerts_naming_what_changed(udp_repository):
    from worklist import configuration

    device = configuration.configuration_save(
        actor=Actor.system("admin"), model=Device, pk=None,
        write=lambda: Device.objects.create(ae_title="CT9", modality="CT"))
    outbound_queue.drain()
    [message] = udp_repository.wait_for(1)
    assert event_id(message) == "110113"
    assert message.xml.find("EventIdentification/EventTypeCode").get("csd-code") == "110131"
    obj = message.xml.find("ParticipantObjectIdentification")
    assert obj.get("ParticipantObjectID") == f"worklist.Device:{device.pk}"
