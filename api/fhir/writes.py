"""FHIR resources a client writes -> the arguments of ris's services: one function per write.

Each resource is first validated by its fhir.resources model (a resource FHIR itself refuses is
400 before ris looks at it); then what ris needs is read out, and what it cannot take is named
(``WriteError``). The services do the rest, as for an HL7 new order or the front desk's click.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

from api.fhir.resources import AE_TITLE_SYSTEM, PLACER_SYSTEM

#: ServiceRequest.priority -> ris's priority (R4 request-priority).
PRIORITY_OF = {"routine": "ROUTINE", "urgent": "HIGH", "asap": "HIGH", "stat": "STAT"}


class WriteError(ValueError):
    """A resource ris cannot take as written (answered 400 with an OperationOutcome)."""


def _model(model, body: Any):
    if not isinstance(body, dict) or body.get("resourceType") != model.__name__:
        raise WriteError(f"the body must be a {model.__name__} resource")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        raise WriteError(f"not a valid {model.__name__}: {where}: {first.get('msg')}") from exc
    except (ValueError, TypeError) as exc:  # the models' own validators raise these too
        raise WriteError(f"not a valid {model.__name__}: {exc}") from exc


def _id_of(reference: str | None, kind: str) -> int:
    text = (reference or "").rsplit("/", 2)
    if len(text) < 2 or text[-2] != kind or not text[-1].isdigit():
        raise WriteError(f"a reference to a {kind} (\"{kind}/<id>\") is required")
    return int(text[-1])


@dataclass(frozen=True)
class NewOrder:
    patient_id: int
    procedure_code: str
    start: dt.datetime | None
    station_ae: str
    priority: str
    placer_order_number: str
    requesting_physician: str
    reason: str
    comments: str


def service_request(body: Any) -> NewOrder:
    """A new ServiceRequest: the subject (Patient/<id>), the procedure (``code.coding`` with a
    code of the catalogue), optionally the time (``occurrenceDateTime``), the station
    (``performer`` with the AE title as identifier), the placer number (identifier of system
    urn:ris:placer-order-number), the priority, requester, reason and note."""
    request = _model(ServiceRequest, body)
    if request.intent not in ("order", "original-order"):
        raise WriteError("ris takes orders: intent must be \"order\"")
    codes = [c.code for c in (request.code.coding or []) if c.code] if request.code else []
    if not codes:
        raise WriteError("code.coding[0].code (a procedure code of the catalogue) is required")
    start = request.occurrenceDateTime
    if start is not None and not isinstance(start, dt.datetime):
        raise WriteError("occurrenceDateTime must be a date and time")
    station = next(
        (p.identifier.value for p in (request.performer or [])
         if p.identifier is not None and p.identifier.system == AE_TITLE_SYSTEM),
        "",
    )
    placer = next((i.value for i in (request.identifier or []) if i.system == PLACER_SYSTEM), "")
    return NewOrder(
        patient_id=_id_of(request.subject.reference, "Patient"),
        procedure_code=codes[0],
        start=start,
        station_ae=station or "",
        priority=PRIORITY_OF.get(request.priority or "routine", "ROUTINE"),
        placer_order_number=placer or "",
        requesting_physician=(request.requester.display or "")[:64] if request.requester else "",
        reason=(request.reasonCode[0].text or "")[:64] if request.reasonCode else "",
        comments="\n".join(n.text for n in (request.note or []) if n.text),
    )


@dataclass(frozen=True)
class Booking:
    status: str
    service_request_id: int | None
    start: dt.datetime | None
    minutes: int | None
    station_ae: str
    reason: str


def appointment(body: Any) -> Booking:
    """An Appointment to book (create: ``basedOn`` the ServiceRequest whose step is booked,
    ``start``, the station as a participant with the AE title as identifier) or to change
    (update: ``status`` cancelled or noshow with a ``cancelationReason``, or booked with a new
    ``start``/station: a move)."""
    booking = _model(Appointment, body)
    based_on = [r.reference for r in (booking.basedOn or []) if r.reference]
    start, end = booking.start, booking.end
    minutes = booking.minutesDuration
    if minutes is None and start is not None and end is not None:
        minutes = int((end - start).total_seconds() // 60)
    station = next(
        (p.actor.identifier.value for p in booking.participant
         if p.actor is not None and p.actor.identifier is not None
         and p.actor.identifier.system == AE_TITLE_SYSTEM),
        "",
    )
    reason = booking.cancelationReason.text if booking.cancelationReason else ""
    return Booking(
        status=booking.status,
        service_request_id=_id_of(based_on[0], "ServiceRequest") if based_on else None,
        start=start,
        minutes=minutes or None,
        station_ae=station or "",
        reason=(reason or "")[:200],
    )
