"""ris rows -> FHIR resources: one function per resource type, each validated by fhir.resources.

fhir.resources 8 ships R5 and R4B models (its R4 models need pydantic 1): the R4B (4.3) models
are used, whose Patient, ServiceRequest, Appointment, Slot, Schedule, ImagingStudy, Task, Bundle,
OperationOutcome and CapabilityStatement are R4's. How ris's rows are seen:

- ServiceRequest: an order's requested procedure; Task: a step's status;
- Appointment: a booked step (one with a start); Slot: the time it occupies on its station;
  Schedule: a station (a Device that performs procedures);
- ImagingStudy: what the gateway received and the availability query found at the PACS for a
  step (``mpps.forwarding.models.StepImages``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.slot import Slot
from fhir.resources.R4B.task import Task

from mpps.forwarding.models import StepImages
from worklist.models import (
    Device,
    OrderStatus,
    Patient,
    RequestedProcedure,
    ScheduledProcedureStep,
)
from worklist.models import StepStatus as S
from worklist.states import SLOT_OCCUPYING_STEP_STATUSES

#: identifier systems ris names its own identifiers with (local, configurable by nothing yet)
PATIENT_ID_SYSTEM = "urn:ris:patient-id"
ACCESSION_SYSTEM = "urn:ris:accession"
PLACER_SYSTEM = "urn:ris:placer-order-number"
SPS_SYSTEM = "urn:ris:sps-id"
AE_TITLE_SYSTEM = "urn:ris:ae-title"
ERROR_CODE_SYSTEM = "urn:ris:error-code"
DICOM_UID_SYSTEM = "urn:dicom:uid"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

#: Order status (ORC-5) -> ServiceRequest.status (R4 request-status).
SERVICE_REQUEST_STATUS = {
    OrderStatus.SCHEDULED: "active",
    OrderStatus.IN_PROGRESS: "active",
    OrderStatus.COMPLETED: "completed",
    OrderStatus.DISCONTINUED: "revoked",
    OrderStatus.CANCELED: "revoked",
}
#: Step status -> Task.status (R4 task-status): the one FHIR mapping of the state machine.
TASK_STATUS = {
    S.UNSCHEDULED: "requested",
    S.SCHEDULED: "accepted",
    S.ARRIVED: "ready",
    S.READY: "ready",
    S.STARTED: "in-progress",
    S.COMPLETED: "completed",
    S.DISCONTINUED: "failed",
    S.CANCELED: "cancelled",
}
#: Step status -> Appointment.status (R4 appointmentstatus) of a booked step; a no-show's
#: cancellation is "noshow" (``appointment``).
APPOINTMENT_STATUS = {
    S.SCHEDULED: "booked",
    S.ARRIVED: "arrived",
    S.READY: "checked-in",
    S.STARTED: "fulfilled",
    S.COMPLETED: "fulfilled",
    S.DISCONTINUED: "fulfilled",
    S.CANCELED: "cancelled",
}
_GENDER = {"M": "male", "F": "female", "O": "other"}
_PRIORITY = {"STAT": "stat", "HIGH": "urgent", "ROUTINE": "routine", "MEDIUM": "routine",
             "LOW": "routine"}


def _instant(value) -> str | None:
    return timezone.localtime(value).isoformat() if value is not None else None


def _human_name(pn: str, use: str | None = None) -> dict[str, Any] | None:
    if not pn:
        return None
    family, _, rest = pn.partition("^")
    given = [g for g in rest.split("^")[:2] if g]
    name: dict[str, Any] = {"text": pn.replace("^", " ").strip()}
    if family:
        name["family"] = family
    if given:
        name["given"] = given
    if use:
        name["use"] = use
    return name


def patient(obj: Patient) -> dict[str, Any]:
    names = [n for n in (
        _human_name(obj.name_alphabetic, "official"),
        _human_name(obj.name_ideographic),
        _human_name(obj.name_phonetic),
    ) if n]
    identifier = {"system": PATIENT_ID_SYSTEM, "value": obj.patient_id,
                  "type": {"coding": [{"system": _V2_0203, "code": "MR"}]}}
    if obj.issuer:
        identifier["assigner"] = {"display": obj.issuer}
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(obj.pk),
        "identifier": [identifier],
        "active": obj.merged_into_id is None,
        "name": names or None,
        "gender": _GENDER.get(obj.sex, "unknown") if obj.sex else None,
        "birthDate": obj.birth_date.isoformat() if obj.birth_date else None,
    }
    return _valid(FhirPatient, data)


def service_request(rp: RequestedProcedure) -> dict[str, Any]:
    order = rp.order
    step = next(iter(rp.steps.all()), None)
    identifiers = [{
        "system": ACCESSION_SYSTEM, "value": order.accession_number,
        "type": {"coding": [{"system": _V2_0203, "code": "ACSN"}]},
    }]
    if order.placer_order_number:
        identifiers.append({
            "system": PLACER_SYSTEM, "value": order.placer_order_number,
            "type": {"coding": [{"system": _V2_0203, "code": "PLAC"}]},
        })
    code = {"text": rp.description or rp.code_meaning or rp.code_value or "imaging procedure"}
    if rp.code_value:
        code["coding"] = [{"system": f"urn:ris:code-scheme:{rp.code_scheme or 'L'}",
                           "code": rp.code_value, "display": rp.code_meaning or None}]
    data = {
        "resourceType": "ServiceRequest",
        "id": str(rp.pk),
        "identifier": identifiers,
        "status": SERVICE_REQUEST_STATUS.get(order.status, "unknown"),
        "intent": "order",
        "priority": _PRIORITY.get(rp.priority, "routine"),
        "code": code,
        "subject": {"reference": f"Patient/{order.patient_id}"},
        "occurrenceDateTime": _instant(step.scheduled_start) if step else None,
        "authoredOn": _instant(order.created_at),
        "requester": {"display": order.requesting_physician} if order.requesting_physician
        else None,
        "reasonCode": [{"text": order.reason}] if order.reason else None,
        "note": [{"text": order.comments}] if order.comments else None,
    }
    return _valid(ServiceRequest, data)


def task(step: ScheduledProcedureStep) -> dict[str, Any]:
    rp = step.requested_procedure
    period = {"start": _instant(step.scheduled_start), "end": _instant(step.scheduled_end)}
    data = {
        "resourceType": "Task",
        "id": str(step.pk),
        "identifier": [{"system": SPS_SYSTEM, "value": step.sps_id}],
        "basedOn": [{"reference": f"ServiceRequest/{rp.pk}"}],
        "status": TASK_STATUS[step.status],
        "statusReason": {"text": step.status_reason} if step.status_reason else None,
        "intent": "order",
        "description": step.description or rp.description or None,
        "for": {"reference": f"Patient/{rp.order.patient_id}"},
        "executionPeriod": {k: v for k, v in period.items() if v} or None,
        "authoredOn": _instant(step.created_at),
        "lastModified": _instant(step.updated_at),
        "owner": {"display": step.station.ae_title} if step.station_id else None,
    }
    return _valid(Task, data)


def _station(device: Device) -> dict[str, Any]:
    """A station as a reference: its AE title as identifier (ris serves no Device resource)."""
    return {"identifier": {"system": AE_TITLE_SYSTEM, "value": device.ae_title},
            "display": device.station_name or device.ae_title}


def appointment(step: ScheduledProcedureStep, *, no_show: bool = False) -> dict[str, Any]:
    rp = step.requested_procedure
    participants = [{"actor": {"reference": f"Patient/{rp.order.patient_id}"},
                     "status": "accepted", "required": "required"}]
    if step.station_id:
        participants.append({"actor": _station(step.station), "status": "accepted",
                             "required": "required"})
    status = "noshow" if no_show else APPOINTMENT_STATUS.get(step.status, "proposed")
    data = {
        "resourceType": "Appointment",
        "id": str(step.pk),
        "identifier": [{"system": SPS_SYSTEM, "value": step.sps_id}],
        "status": status,
        "cancelationReason": {"text": step.status_reason}
        if status in ("cancelled", "noshow") and step.status_reason else None,
        "description": step.description or rp.description or None,
        "start": _instant(step.scheduled_start),
        "end": _instant(step.scheduled_end),
        "minutesDuration": step.expected_duration_minutes or None,
        "slot": [{"reference": f"Slot/{step.pk}"}] if step.station_id else None,
        "created": _instant(step.created_at),
        "basedOn": [{"reference": f"ServiceRequest/{rp.pk}"}],
        "participant": participants,
    }
    return _valid(Appointment, data)


def slot(step: ScheduledProcedureStep) -> dict[str, Any]:
    """The time a booked step occupies on its station (busy while the step holds it)."""
    data = {
        "resourceType": "Slot",
        "id": str(step.pk),
        "schedule": {"reference": f"Schedule/{step.station_id}"},
        "status": "busy" if step.status in SLOT_OCCUPYING_STEP_STATUSES else "free",
        "start": _instant(step.scheduled_start),
        "end": _instant(step.scheduled_end),
    }
    return _valid(Slot, data)


def schedule(device: Device) -> dict[str, Any]:
    data = {
        "resourceType": "Schedule",
        "id": str(device.pk),
        "identifier": [{"system": AE_TITLE_SYSTEM, "value": device.ae_title}],
        "active": device.active,
        "serviceType": [{"text": device.modality}] if device.modality else None,
        "actor": [_station(device)],
    }
    return _valid(Schedule, data)


def imaging_study(images: StepImages) -> dict[str, Any]:
    """A step's study as ris knows it: the counts found at the PACS once it confirmed them,
    else what the gateway received; the PACS that holds it as the endpoint's display."""
    step = images.step
    rp = step.requested_procedure
    at_pacs = images.pacs_confirmed_at is not None
    data = {
        "resourceType": "ImagingStudy",
        "id": str(images.pk),
        "identifier": [{"system": DICOM_UID_SYSTEM, "value": f"urn:oid:{rp.study_instance_uid}"},
                       {"system": ACCESSION_SYSTEM, "value": rp.order.accession_number,
                        "type": {"coding": [{"system": _V2_0203, "code": "ACSN"}]}}],
        "status": "available" if at_pacs or images.received_instances else "registered",
        "modality": [{"system": _DCM, "code": step.modality}] if step.modality else None,
        "subject": {"reference": f"Patient/{rp.order.patient_id}"},
        "started": _instant(images.last_received_at or step.scheduled_start),
        "basedOn": [{"reference": f"ServiceRequest/{rp.pk}"}],
        "endpoint": [{"display": f"PACS {images.pacs_destination}"}]
        if images.pacs_destination else None,
        "numberOfSeries": images.pacs_series if at_pacs else images.received_series,
        "numberOfInstances": images.pacs_instances if at_pacs else images.received_instances,
        "description": rp.description or None,
    }
    return _valid(ImagingStudy, data)


def bundle(entries: list[dict[str, Any]], *, total: int, links: dict[str, str]) -> dict[str, Any]:
    data = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
        "entry": [
            {"fullUrl": f"{links['base']}/{e['resourceType']}/{e['id']}", "resource": e,
             "search": {"mode": "match"}}
            for e in entries
        ] or None,
    }
    data["link"] = [link for link in data["link"] if link["relation"] != "base"]
    return _valid(Bundle, data)


SEARCH_PARAMS = {
    "Patient": ["identifier", "name", "birthdate", "_count", "_offset"],
    "ServiceRequest": ["identifier", "patient", "subject", "status", "_count", "_offset"],
    "Appointment": ["identifier", "patient", "subject", "status", "date", "actor",
                    "based-on", "_count", "_offset"],
    "Slot": ["schedule", "start", "status", "_count", "_offset"],
    "Schedule": ["identifier", "actor", "active", "_count", "_offset"],
    "ImagingStudy": ["identifier", "patient", "subject", "status", "basedon", "_count",
                     "_offset"],
    "Task": ["identifier", "patient", "subject", "status", "owner", "_count", "_offset"],
}
#: The types a client may write: create (POST) and update (PUT), through the same services as
#: an HL7 new order (ServiceRequest) and the front desk's booking and cancelling (Appointment).
WRITABLE = {"ServiceRequest": ["create"], "Appointment": ["create", "update"]}
_PARAM_TYPE = {"identifier": "token", "status": "token", "active": "token", "patient": "reference",
               "subject": "reference", "actor": "reference", "schedule": "reference",
               "based-on": "reference", "basedon": "reference", "owner": "string",
               "date": "date", "start": "date", "birthdate": "date", "name": "string"}


def capability_statement(base: str) -> dict[str, Any]:
    data = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now().date().isoformat(),
        "kind": "instance",
        "software": {"name": "ris"},
        "implementation": {"description": settings.RIS_INSTITUTION_NAME or "ris", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "resource": [
                {
                    "type": name,
                    "interaction": [{"code": code} for code in
                                    ["read", "search-type", *WRITABLE.get(name, [])]],
                    "searchParam": [
                        {"name": p, "type": "number" if p.startswith("_")
                         else _PARAM_TYPE.get(p, "string")}
                        for p in params
                    ],
                }
                for name, params in SEARCH_PARAMS.items()
            ],
        }],
    }
    return _valid(CapabilityStatement, data)


def operation_outcome(code: str, text: str, *, domain_code: str = "") -> dict[str, Any]:
    """An error as FHIR says (R4 3.1.0.4): the issue type, the message, and ris's domain error
    code (``worklist.errors.ErrorCode``) as the issue's details, as the REST API's ``code``."""
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": text}
    if domain_code:
        issue["details"] = {"coding": [{"system": ERROR_CODE_SYSTEM, "code": domain_code}],
                            "text": text}
    return _valid(OperationOutcome, {"resourceType": "OperationOutcome", "issue": [issue]})


def _valid(model, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its empty fields dropped, validated by the fhir.resources model."""
    clean = {k: v for k, v in data.items() if v is not None}
    return model.model_validate(clean).model_dump(mode="json", exclude_none=True)
