"""IHE ATNA audit messages: ris's audit trail sent to a hospital's audit record repository.

Every ``AuditEvent`` row whose action ATNA defines an event for becomes one DICOM audit message
(PS3.15 Annex A.5, the XML schema that superseded RFC 3881 and keeps its element names), queued
on the durable outbound queue in the transaction that wrote the row (``on_audit_recorded``) and
delivered by the queue's workers as an RFC 5424 syslog message (IHE ITI-20 Record Audit Event):
over UDP (RFC 5426, one message per datagram) or TLS (RFC 5425, octet-counted frames; the
client certificate authenticates ris to the repository as ITI-19 asks). A repository that is
down delays the messages, it never loses them: the queue retries with backoff, and a message
is built from the row as it was, so a late delivery still says what happened then.

Off unless ``RIS_ATNA_REPOSITORY`` is set; the ``AuditEvent`` table stays the system of record.
The mapping from ris's actions to ATNA events is ``event_for`` (one table, below).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from django.conf import settings
from django.utils import timezone

from ris import outbound_queue
from ris.models import OutboundJob
from worklist.models import AuditEvent

logger = logging.getLogger("ris.atna")

JOB_KIND = "atna.audit"
DESTINATION = "audit repository"


@dataclass(frozen=True)
class Code:
    """A coded value of the audit schema: ``csd-code``, ``codeSystemName``, ``originalText``."""

    code: str
    system: str
    text: str


def _dcm(code: str, text: str) -> Code:
    return Code(code, "DCM", text)


# PS3.16 CID 400 (Audit Event ID) and CID 401 (Audit Event Type Code), as PS3.15 A.5.3 uses them.
APPLICATION_ACTIVITY = _dcm("110100", "Application Activity")
INSTANCES_TRANSFERRED = _dcm("110104", "DICOM Instances Transferred")
EXPORT = _dcm("110106", "Export")
ORDER_RECORD = _dcm("110109", "Order Record")
PATIENT_RECORD = _dcm("110110", "Patient Record")
PROCEDURE_RECORD = _dcm("110111", "Procedure Record")
QUERY = _dcm("110112", "Query")
SECURITY_ALERT = _dcm("110113", "Security Alert")
USER_AUTHENTICATION = _dcm("110114", "User Authentication")
APPLICATION_START = _dcm("110120", "Application Start")
APPLICATION_STOP = _dcm("110121", "Application Stop")
LOGIN = _dcm("110122", "Login")
LOGOUT = _dcm("110123", "Logout")
NODE_AUTHENTICATION = _dcm("110126", "Node Authentication")
SOFTWARE_CONFIGURATION = _dcm("110131", "Software Configuration")
USE_OF_RESTRICTED_FUNCTION = _dcm("110132", "Use of Restricted Function")
# CID 402 (Audit Active Participant Role ID Code)
ROLE_APPLICATION = _dcm("110150", "Application")
ROLE_DESTINATION = _dcm("110152", "Destination Role ID")
ROLE_SOURCE = _dcm("110153", "Source Role ID")
# RFC 3881 5.5.4 participant object ID types, and PS3.15's DICOM additions.
ID_PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
ID_USER_IDENTIFIER = Code("11", "RFC-3881", "User Identifier")
ID_STUDY_UID = _dcm("110180", "Study Instance UID")
ID_SOP_CLASS_UID = _dcm("110181", "SOP Class UID")
ID_NODE = _dcm("110182", "Node ID")
# RFC 3881 5.4.1 (EventOutcomeIndicator)
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE = "0", "4", "8"

MWL_FIND_SOP_CLASS = "1.2.840.10008.5.1.4.31"

#: Object types of rows about a patient's record, an order, a procedure: the rest of the
#: create/update/delete rows are configuration (devices, catalogue, destinations, users).
_PATIENT_TYPES = {"worklist.Patient", "worklist.Visit"}
_ORDER_TYPES = {"worklist.Order"}
_PROCEDURE_TYPES = {"worklist.RequestedProcedure", "worklist.ScheduledProcedureStep",
                    "mpps.PerformedProcedureStep"}


@dataclass(frozen=True)
class AtnaEvent:
    event_id: Code
    action: str  # EventActionCode: C(reate) R(ead) U(pdate) D(elete) E(xecute)
    type_code: Code | None = None
    outcome: str = SUCCESS


#: Access rows by action (worklist.audit.record_access and the services that call it).
_ACCESS_EVENTS: dict[str, AtnaEvent] = {
    "auth.login": AtnaEvent(USER_AUTHENTICATION, "E", LOGIN),
    "auth.login_failed": AtnaEvent(USER_AUTHENTICATION, "E", LOGIN, MINOR_FAILURE),
    "auth.lockout": AtnaEvent(USER_AUTHENTICATION, "E", LOGIN, SERIOUS_FAILURE),
    "auth.logout": AtnaEvent(USER_AUTHENTICATION, "E", LOGOUT),
    "patient.read": AtnaEvent(PATIENT_RECORD, "R"),
    "mwl.query": AtnaEvent(QUERY, "E"),
    "ris.start": AtnaEvent(APPLICATION_ACTIVITY, "E", APPLICATION_START),
    "ris.stop": AtnaEvent(APPLICATION_ACTIVITY, "E", APPLICATION_STOP),
    "export.print": AtnaEvent(EXPORT, "R"),
    "export.statistics": AtnaEvent(EXPORT, "R"),
    "dicom.instances_received": AtnaEvent(INSTANCES_TRANSFERRED, "C"),
    "dicom.instances_sent": AtnaEvent(INSTANCES_TRANSFERRED, "R"),
    "hl7.reprocess": AtnaEvent(SECURITY_ALERT, "E", USE_OF_RESTRICTED_FUNCTION),
    "outbound.retry": AtnaEvent(SECURITY_ALERT, "E", USE_OF_RESTRICTED_FUNCTION),
    "outbound.supersede": AtnaEvent(SECURITY_ALERT, "E", USE_OF_RESTRICTED_FUNCTION),
    "peer.authentication_failed": AtnaEvent(SECURITY_ALERT, "E", NODE_AUTHENTICATION,
                                            MINOR_FAILURE),
}


def event_for(row: AuditEvent) -> AtnaEvent | None:
    """The ATNA event of an audit row, or None for rows ATNA has no event for."""
    if row.action in _ACCESS_EVENTS:
        return _ACCESS_EVENTS[row.action]
    verb = row.action.rsplit(".", 1)[-1]
    action = "C" if verb in ("create", "import", "book") else "D" if verb == "delete" else "U"
    if row.object_type in _PATIENT_TYPES:
        return AtnaEvent(PATIENT_RECORD, action)
    if row.object_type in _ORDER_TYPES:
        return AtnaEvent(ORDER_RECORD, action)
    if row.object_type in _PROCEDURE_TYPES:
        return AtnaEvent(PROCEDURE_RECORD, action)
    if verb in ("create", "update", "delete"):
        return AtnaEvent(SECURITY_ALERT, "E", SOFTWARE_CONFIGURATION)
    return None


# --- the message (PS3.15 A.5.1) ---------------------------------------------------------------


def _coded(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(parent, tag, {"csd-code": code.code, "codeSystemName": code.system,
                                       "originalText": code.text})


def _participant(parent: ET.Element, user_id: str, *, requestor: bool, role: Code | None = None,
                 address: str = "") -> None:
    attributes = {"UserID": user_id or "unknown", "UserIsRequestor": str(requestor).lower()}
    if address:
        attributes["NetworkAccessPointID"] = address
        # RFC 3881 5.3.5: 1 machine name, 2 IP address.
        attributes["NetworkAccessPointTypeCode"] = "2" if address[:1].isdigit() or ":" in address \
            else "1"
    element = ET.SubElement(parent, "ActiveParticipant", attributes)
    if role is not None:
        _coded(element, "RoleIDCode", role)


def _object(parent: ET.Element, object_id: str, *, type_code: str, role: str, id_type: Code,
            name: str = "", query: str = "", details: dict[str, str] | None = None) -> None:
    element = ET.SubElement(parent, "ParticipantObjectIdentification", {
        "ParticipantObjectID": object_id or "unknown",
        "ParticipantObjectTypeCode": type_code,
        "ParticipantObjectTypeCodeRole": role,
    })
    _coded(element, "ParticipantObjectIDTypeCode", id_type)
    if name:
        ET.SubElement(element, "ParticipantObjectName").text = name
    if query:
        ET.SubElement(element, "ParticipantObjectQuery").text = query
    for key, value in (details or {}).items():
        ET.SubElement(element, "ParticipantObjectDetail", {
            "type": key, "value": base64.b64encode(str(value).encode()).decode()})


def _address(row: AuditEvent) -> str:
    after = row.after if isinstance(row.after, dict) else {}
    address = str(after.get("address") or after.get("peer") or "")
    if address.count(":") == 1:  # host:port
        address = address.split(":")[0]
    return address


def _patient_of(row: AuditEvent) -> tuple[str, str] | None:
    """(patient ID as CX with its issuer, name) of the record a row is about."""
    from worklist.models import Order, Patient, ScheduledProcedureStep, Visit

    try:
        pk = int(row.object_id)
    except (TypeError, ValueError):
        return None
    lookups = {
        "worklist.Patient": (Patient.objects.filter(pk=pk), ""),
        "worklist.Visit": (Visit.objects.filter(pk=pk), "patient__"),
        "worklist.Order": (Order.objects.filter(pk=pk), "patient__"),
        "worklist.ScheduledProcedureStep": (ScheduledProcedureStep.objects.filter(pk=pk),
                                            "requested_procedure__order__patient__"),
    }
    if row.object_type not in lookups:
        return None
    queryset, prefix = lookups[row.object_type]
    found = queryset.values_list(f"{prefix}patient_id", f"{prefix}issuer").first()
    if found is None:
        return None
    patient_id, issuer = found
    return (f"{patient_id}^^^&{issuer}&L" if issuer else patient_id), ""


def message(row: AuditEvent) -> str | None:
    """The DICOM audit message (XML text) for ``row``, or None when ATNA defines no event."""
    atna = event_for(row)
    if atna is None:
        return None
    at = row.at or timezone.now()
    root = ET.Element("AuditMessage")
    identification = ET.SubElement(root, "EventIdentification", {
        "EventActionCode": atna.action,
        "EventDateTime": at.astimezone(dt.UTC).isoformat(timespec="milliseconds"),
        "EventOutcomeIndicator": atna.outcome,
    })
    _coded(identification, "EventID", atna.event_id)
    if atna.type_code is not None:
        _coded(identification, "EventTypeCode", atna.type_code)
    if atna.outcome != SUCCESS and row.detail:
        ET.SubElement(identification, "EventOutcomeDescription").text = row.detail[:200]

    ris_id = settings.RIS_AE_TITLE
    ris_address = socket.gethostname()
    after = row.after if isinstance(row.after, dict) else {}
    if atna.event_id == APPLICATION_ACTIVITY:
        _participant(root, ris_id, requestor=False, role=ROLE_APPLICATION, address=ris_address)
    elif atna.event_id == INSTANCES_TRANSFERRED:
        sender, receiver = (row.actor, ris_id) if atna.action == "C" \
            else (ris_id, str(after.get("destination", "")))
        _participant(root, sender, requestor=atna.action == "C", role=ROLE_SOURCE,
                     address=_address(row) if atna.action == "C" else ris_address)
        _participant(root, receiver, requestor=atna.action != "C", role=ROLE_DESTINATION,
                     address=ris_address if atna.action == "C" else "")
    else:
        _participant(root, row.actor, requestor=True, address=_address(row))
        _participant(root, ris_id, requestor=False, role=ROLE_DESTINATION, address=ris_address)

    source = ET.SubElement(root, "AuditSourceIdentification", {
        "AuditSourceID": settings.RIS_ATNA_SOURCE_ID or f"{ris_id}@{ris_address}"})
    if settings.RIS_ATNA_ENTERPRISE_SITE_ID:
        source.set("AuditEnterpriseSiteID", settings.RIS_ATNA_ENTERPRISE_SITE_ID)
    # RFC 3881 5.4.3: 4 = application server process tier.
    ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": "4", "codeSystemName": "DCM",
                                                  "originalText": "Application Server"})
    _objects(root, row, atna, after)
    return ET.tostring(root, encoding="unicode")


def _objects(root: ET.Element, row: AuditEvent, atna: AtnaEvent, after: dict) -> None:
    """The participant objects each event of PS3.15 A.5.3 asks for."""
    event_id = atna.event_id
    if event_id == USER_AUTHENTICATION:
        # The user is the subject; a failed login names the username tried (no account).
        _object(root, row.object_id if atna.outcome != SUCCESS else row.actor, type_code="1",
                role="11", id_type=ID_USER_IDENTIFIER)
    elif event_id == QUERY:
        keys = after.get("keys") or {}
        text = "\n".join(f"{k}={v}" for k, v in sorted(keys.items()))
        _object(root, MWL_FIND_SOP_CLASS, type_code="2", role="3", id_type=ID_SOP_CLASS_UID,
                query=base64.b64encode(text.encode()).decode(),
                details={"matches": after.get("matches", "")})
    elif event_id == INSTANCES_TRANSFERRED:
        _object(root, row.object_id, type_code="2", role="3", id_type=ID_STUDY_UID,
                details={"instances": after.get("instances", "")})
        patient = after.get("patient_id")
        if patient:
            _object(root, str(patient), type_code="1", role="1", id_type=ID_PATIENT_NUMBER)
    elif event_id in (PATIENT_RECORD, ORDER_RECORD, PROCEDURE_RECORD):
        patient = _patient_of(row)
        if patient is not None:
            _object(root, patient[0], type_code="1", role="1", id_type=ID_PATIENT_NUMBER)
    elif event_id == EXPORT:
        _object(root, row.object_id, type_code="2", role="3",
                id_type=Code("12", "RFC-3881", "URI"), name=row.detail[:64])
    elif event_id == SECURITY_ALERT:
        _object(root, f"{row.object_type}:{row.object_id}", type_code="2", role="13",
                id_type=ID_NODE, name=row.action)


# --- queueing -----------------------------------------------------------------------------------


def on_audit_recorded(sender, events, **kwargs) -> None:
    """Receiver of ``worklist.signals.audit_recorded``: one queued ATNA message per row ATNA has
    an event for, in the transaction that wrote the rows (both commit or neither)."""
    if not settings.RIS_ATNA_REPOSITORY:
        return
    jobs = []
    for row in events:
        try:
            text = message(row)
        except Exception:  # noqa: BLE001 - the change being audited must not fail for this
            logger.exception("ATNA message for audit action %s could not be built", row.action)
            continue
        if text is not None:
            jobs.append(OutboundJob(
                kind=JOB_KIND, destination=DESTINATION, payload={"xml": text,
                                                                 "action": row.action},
                max_attempts=settings.RIS_ATNA_MAX_ATTEMPTS,
                next_attempt_at=timezone.now()))
    if jobs:
        OutboundJob.objects.bulk_create(jobs)


# --- transport (ITI-20) -----------------------------------------------------------------------

#: RFC 5424 PRI: facility 10 (security/authorization), severity 5 (notice), as ITI-20 asks; a
#: failure outcome is sent as severity 4 (warning).
_PRI_NOTICE, _PRI_WARNING = 10 * 8 + 5, 10 * 8 + 4
_BOM = b"\xef\xbb\xbf"


def syslog_message(xml: str, *, failure: bool = False, when: dt.datetime | None = None) -> bytes:
    """One RFC 5424 message: header, no structured data, the XML as UTF-8 with its BOM."""
    when = (when or timezone.now()).astimezone(dt.UTC)
    pri = _PRI_WARNING if failure else _PRI_NOTICE
    host = socket.gethostname()[:255] or "-"
    header = (f"<{pri}>1 {when.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} "
              f"{host} ris {os.getpid()} IHE+RFC-3881 - ")
    return header.encode("ascii", "replace") + _BOM + xml.encode("utf-8")


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=settings.RIS_ATNA_TLS_CA or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.RIS_ATNA_TLS_CERT:
        context.load_cert_chain(settings.RIS_ATNA_TLS_CERT, settings.RIS_ATNA_TLS_KEY or None)
    return context


def send(job: OutboundJob) -> str:
    """Queue sender of ``atna.audit`` jobs (``RIS_OUTBOUND_SENDERS``)."""
    target = urlsplit(settings.RIS_ATNA_REPOSITORY)
    if not target.hostname:
        raise outbound_queue.Rejected("RIS_ATNA_REPOSITORY is not set")
    failure = 'EventOutcomeIndicator="0"' not in job.payload["xml"]
    data = syslog_message(job.payload["xml"], failure=failure)
    try:
        if target.scheme == "udp":
            # RFC 5426 3.2: one message per datagram; no answer, so "sent" is all we know.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(data, (target.hostname, target.port or 514))
            return f"{len(data)} bytes by UDP"
        if target.scheme in ("tls", "tcp"):
            port = target.port or (6514 if target.scheme == "tls" else 601)
            with socket.create_connection((target.hostname, port), timeout=10) as raw:
                sock = raw
                if target.scheme == "tls":
                    sock = _tls_context().wrap_socket(raw, server_hostname=target.hostname)
                # RFC 5425 4.3 / RFC 6587 3.4.1: octet counting, "LEN SP MSG".
                sock.sendall(str(len(data)).encode() + b" " + data)
                if target.scheme == "tls":
                    try:
                        sock.unwrap()  # close_notify: the repository knows the frame is whole
                    except OSError:
                        pass
            return f"{len(data)} bytes by {target.scheme.upper()}"
    except ssl.SSLCertVerificationError as exc:
        raise outbound_queue.RetryLater(f"audit repository certificate refused: {exc}") from exc
    except OSError as exc:
        raise outbound_queue.RetryLater(f"audit repository unreachable: {exc}") from exc
    raise outbound_queue.Rejected(f"unknown audit transport {target.scheme!r} (udp, tls, tcp)")
