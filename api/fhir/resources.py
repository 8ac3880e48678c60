"""ris rows -> FHIR resources: one function per resource type, each validated by fhir.resources.

fhir.resources 8 ships R5 and R4B models (its R4 models need pydantic 1): the R4B (4.3) models
are used, whose Patient, ServiceRequest, Task, Bundle and CapabilityStatement are R4's.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from worklist.models import OrderStatus, Patient, RequestedProcedure, ScheduledProcedureStep
from worklist.models import StepStatus as S

#: identifier systems ris names its own identifiers with (local, configurable by nothing yet)
PATIENT_ID_SYSTEM = "urn:ris:patient-id"
ACCESSION_SYSTEM = "urn:ris:accession"
PLACER_SYSTEM = "urn:ris:placer-order-number"
SPS_SYSTEM = "urn:ris:sps-id"
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
    "Task": ["identifier", "patient", "subject", "status", "owner", "_count", "_offset"],
}


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
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "searchParam": [
                        {"name": p, "type": "number" if p.startswith("_") else "token"
                         if p in ("identifier", "status") else "reference"
                         if p in ("patient", "subject") else "string"}
                        for p in params
                    ],
                }
                for name, params in SEARCH_PARAMS.items()
            ],
        }],
    }
    return _valid(CapabilityStatement, data)


def _valid(model, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its empty fields dropped, validated by the fhir.resources model."""
    clean = {k: v for k, v in data.items() if v is not None}
    return model.model_validate(clean).model_dump(mode="json", exclude_none=True)
