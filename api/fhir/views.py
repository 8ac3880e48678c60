"""The FHIR R4 facade's endpoints (JSON): read and search as thin reads over the worklist models,
encoded by ``api.fhir.resources``; create a ServiceRequest (an order, as an HL7 new order makes
one), create and update an Appointment (book, move, cancel, no-show, as the front desk does),
each through ``worklist.services`` (validation, audit, HIS messages) with the resource parsed by
``api.fhir.writes``. Errors are OperationOutcome resources (FHIR R4 3.1.0.4) with the domain
error code."""

from __future__ import annotations

import datetime as dt
import json

from django.db.models import Q, QuerySet
from django.http import JsonResponse, QueryDict
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import APIException
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from api.exceptions import DOMAIN_STATUS
from api.fhir import resources, writes
from api.permissions import ANY_ROLE, FRONT_DESK, HasRole
from api.views import AUTHENTICATION, actor_of
from mpps.forwarding.models import StepImages
from worklist import services
from worklist.errors import DomainError, ErrorCode
from worklist.models import (
    Device,
    Order,
    Patient,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatus,
)

FHIR_JSON = "application/fhir+json"
MAX_COUNT = 200


def _outcome(status: int, code: str, text: str, domain_code: str = "") -> JsonResponse:
    body = resources.operation_outcome(code, text, domain_code=domain_code)
    return JsonResponse(body, status=status, content_type=FHIR_JSON)


#: The OperationOutcome issue type of each HTTP status a domain refusal gets (FHIR issue-type).
_ISSUE_TYPE = {400: "invalid", 404: "not-found", 409: "conflict"}


def _refused(exc: DomainError) -> JsonResponse:
    status = DOMAIN_STATUS[exc.code]
    return _outcome(status, _ISSUE_TYPE.get(status, "processing"), exc.message, str(exc.code))


class _Invalid(Exception):
    pass


def _token(value: str) -> tuple[str | None, str]:
    system, sep, code = value.partition("|")
    return (system or None, code) if sep else (None, value)


def _reference_id(value: str, kind: str) -> str:
    value = value.rsplit("/", 1)[-1] if value.startswith(f"{kind}/") or "/" in value else value
    if not value.isdigit():
        raise _Invalid(f"{value!r} is not a {kind} id")
    return value


_TASK_STATUS_OF = {}
for _step_status, _task_status in resources.TASK_STATUS.items():
    _TASK_STATUS_OF.setdefault(_task_status, []).append(_step_status)
_SR_STATUS_OF = {}
for _order_status, _sr_status in resources.SERVICE_REQUEST_STATUS.items():
    _SR_STATUS_OF.setdefault(_sr_status, []).append(_order_status)


def _patients(params) -> QuerySet:
    qs = Patient.objects.all()
    if "identifier" in params:
        _, value = _token(params["identifier"])
        qs = qs.filter(patient_id=value)
    if "name" in params:
        name = params["name"]
        qs = qs.filter(Q(name_alphabetic__icontains=name) | Q(name_ideographic__icontains=name)
                       | Q(name_phonetic__icontains=name))
    if "birthdate" in params:
        qs = qs.filter(birth_date=params["birthdate"])
    return qs.order_by("pk")


def _service_requests(params) -> QuerySet:
    qs = RequestedProcedure.objects.select_related("order").prefetch_related("steps")
    patient = params.get("patient") or params.get("subject")
    if patient:
        qs = qs.filter(order__patient_id=_reference_id(patient, "Patient"))
    if "identifier" in params:
        _, value = _token(params["identifier"])
        qs = qs.filter(Q(order__accession_number=value) | Q(order__placer_order_number=value))
    if "status" in params:
        qs = qs.filter(order__status__in=_SR_STATUS_OF.get(params["status"], []))
    return qs.order_by("pk")


def _tasks(params) -> QuerySet:
    qs = ScheduledProcedureStep.objects.select_related(
        "station", "requested_procedure__order"
    )
    patient = params.get("patient") or params.get("subject")
    if patient:
        qs = qs.filter(requested_procedure__order__patient_id=_reference_id(patient, "Patient"))
    if "identifier" in params:
        qs = qs.filter(sps_id=_token(params["identifier"])[1])
    if "status" in params:
        qs = qs.filter(status__in=_TASK_STATUS_OF.get(params["status"], []))
    if "owner" in params:
        qs = qs.filter(station__ae_title=params["owner"])
    return qs.order_by("scheduled_start", "pk")


_APPOINTMENT_STATUS_OF = {}
for _step_status, _appointment_status in resources.APPOINTMENT_STATUS.items():
    _APPOINTMENT_STATUS_OF.setdefault(_appointment_status, []).append(_step_status)


def _date_filter(values: list[str], field: str) -> Q:
    """FHIR date search (R4 3.1.1.5.7): ``YYYY-MM-DD`` (that day) or with a prefix ``eq``,
    ``ge``, ``gt``, ``le``, ``lt``, each a day in the department's time zone; several AND."""
    condition = Q()
    for value in values:
        prefix, day = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
        try:
            start = timezone.make_aware(dt.datetime.combine(dt.date.fromisoformat(day[:10]),
                                                            dt.time()))
        except ValueError as exc:
            raise _Invalid(f"{value!r} is not a date") from exc
        end = start + dt.timedelta(days=1)
        bounds = {"eq": Q(**{f"{field}__gte": start, f"{field}__lt": end}),
                  "ge": Q(**{f"{field}__gte": start}), "gt": Q(**{f"{field}__gte": end}),
                  "le": Q(**{f"{field}__lt": end}), "lt": Q(**{f"{field}__lt": start})}
        if prefix not in bounds:
            raise _Invalid(f"date prefix {prefix!r} is not supported")
        condition &= bounds[prefix]
    return condition


def _station_filter(value: str, field: str) -> Q:
    """A station named by ``Schedule/<id>`` or by its AE title (``urn:ris:ae-title|CT1``)."""
    if value.startswith("Schedule/"):
        return Q(**{f"{field}_id": _reference_id(value, "Schedule")})
    return Q(**{f"{field}__ae_title": _token(value)[1]})


def _appointments(params) -> QuerySet:
    qs = ScheduledProcedureStep.objects.select_related(
        "station", "requested_procedure__order"
    ).filter(scheduled_start__isnull=False)
    patient = params.get("patient") or params.get("subject")
    if patient:
        qs = qs.filter(requested_procedure__order__patient_id=_reference_id(patient, "Patient"))
    if "identifier" in params:
        qs = qs.filter(sps_id=_token(params["identifier"])[1])
    if "status" in params:
        qs = qs.filter(status__in=_APPOINTMENT_STATUS_OF.get(params["status"], []))
    if "date" in params:
        qs = qs.filter(_date_filter(params.getlist("date"), "scheduled_start"))
    if "actor" in params:
        actor = params["actor"]
        qs = qs.filter(requested_procedure__order__patient_id=_reference_id(actor, "Patient")
                       ) if actor.startswith("Patient/") else qs.filter(
            _station_filter(actor, "station"))
    if "based-on" in params:
        qs = qs.filter(requested_procedure_id=_reference_id(params["based-on"],
                                                            "ServiceRequest"))
    return qs.order_by("scheduled_start", "pk")


def _slots(params) -> QuerySet:
    qs = ScheduledProcedureStep.objects.filter(
        scheduled_start__isnull=False, station__isnull=False
    )
    if "schedule" in params:
        qs = qs.filter(station_id=_reference_id(params["schedule"], "Schedule"))
    if "start" in params:
        qs = qs.filter(_date_filter(params.getlist("start"), "scheduled_start"))
    if "status" in params:
        busy = Q(status__in=sorted(resources.SLOT_OCCUPYING_STEP_STATUSES))
        qs = qs.filter(busy if params["status"] == "busy" else ~busy)
    return qs.order_by("scheduled_start", "pk")


def _schedules(params) -> QuerySet:
    qs = Device.objects.all()
    if "identifier" in params:
        qs = qs.filter(ae_title=_token(params["identifier"])[1])
    if "actor" in params:
        qs = qs.filter(ae_title=_token(params["actor"])[1])
    if "active" in params:
        qs = qs.filter(active=params["active"] == "true")
    return qs.order_by("pk")


def _imaging_studies(params) -> QuerySet:
    qs = StepImages.objects.select_related("step__requested_procedure__order")
    patient = params.get("patient") or params.get("subject")
    if patient:
        qs = qs.filter(
            step__requested_procedure__order__patient_id=_reference_id(patient, "Patient"))
    if "identifier" in params:
        value = _token(params["identifier"])[1]
        qs = qs.filter(Q(step__requested_procedure__study_instance_uid=value.removeprefix(
            "urn:oid:")) | Q(step__requested_procedure__order__accession_number=value))
    if "basedon" in params:
        qs = qs.filter(step__requested_procedure_id=_reference_id(params["basedon"],
                                                                 "ServiceRequest"))
    if "status" in params:
        available = Q(pacs_confirmed_at__isnull=False) | Q(received_instances__gt=0)
        qs = qs.filter(available if params["status"] == "available" else ~available)
    return qs.order_by("pk")


def _appointment(step: ScheduledProcedureStep) -> dict:
    return resources.appointment(step, no_show=services.is_no_show(step))


TYPES = {
    "Patient": (_patients, resources.patient),
    "ServiceRequest": (_service_requests, resources.service_request),
    "Appointment": (_appointments, _appointment),
    "Slot": (_slots, resources.slot),
    "Schedule": (_schedules, resources.schedule),
    "ImagingStudy": (_imaging_studies, resources.imaging_study),
    "Task": (_tasks, resources.task),
}


class FhirJSONOnly(BaseContentNegotiation):
    """Every answer is ``application/fhir+json`` (JSON only, as this facade documents), whatever
    the Accept header (FHIR clients send ``application/fhir+json``, which DRF does not know)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class FhirView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [HasRole]
    content_negotiation_class = FhirJSONOnly
    read_roles = ANY_ROLE
    write_roles = FRONT_DESK

    def handle_exception(self, exc):
        if isinstance(exc, APIException):
            code = {401: "login", 403: "forbidden", 404: "not-found"}.get(
                exc.status_code, "invalid"
            )
            response = _outcome(exc.status_code, code, str(exc.detail))
            if exc.status_code == 401:
                response["WWW-Authenticate"] = "Token"
            return response
        return super().handle_exception(exc)


@extend_schema(tags=["fhir"], summary="FHIR CapabilityStatement",
               responses={(200, FHIR_JSON): OpenApiResponse(OpenApiTypes.OBJECT)})
class MetadataView(FhirView):
    def get(self, request: Request) -> JsonResponse:
        base = request.build_absolute_uri("/fhir")
        return JsonResponse(resources.capability_statement(base), content_type=FHIR_JSON)


@extend_schema(tags=["fhir"], summary="FHIR search (Bundle searchset, _count/_offset paging)",
               responses={(200, FHIR_JSON): OpenApiResponse(OpenApiTypes.OBJECT),
                          404: OpenApiResponse(description="Unknown resource type.")})
class SearchView(FhirView):
    def get(self, request: Request, resource_type: str) -> JsonResponse:
        if resource_type not in TYPES:
            return _outcome(404, "not-supported", f"{resource_type} is not served here")
        query, encode = TYPES[resource_type]
        params = request.query_params
        unknown = set(params) - set(resources.SEARCH_PARAMS[resource_type])
        if unknown:
            return _outcome(400, "not-supported", f"unsupported search parameters: "
                            f"{', '.join(sorted(unknown))}")
        try:
            count = min(int(params.get("_count", 50)), MAX_COUNT)
            offset = int(params.get("_offset", 0))
            if count < 0 or offset < 0:
                raise ValueError
            qs = query(params)
            total = qs.count()
            rows = list(qs[offset:offset + count])
        except _Invalid as exc:
            return _outcome(400, "invalid", str(exc))
        except (ValueError, TypeError):
            return _outcome(400, "invalid", "_count and _offset must be unsigned integers")
        base = request.build_absolute_uri("/fhir")
        here = [(k, v) for k, values in params.lists() if k not in ("_count", "_offset")
                for v in values]

        def page(at: int) -> str:
            query_string = "&".join(f"{k}={v}" for k, v in
                                    [*here, ("_count", count), ("_offset", at)])
            return f"{base}/{resource_type}?{query_string}"

        links = {"base": base, "self": page(offset)}
        if offset + count < total:
            links["next"] = page(offset + count)
        if offset > 0:
            links["previous"] = page(max(offset - count, 0))
        body = resources.bundle([encode(r) for r in rows], total=total, links=links)
        return JsonResponse(body, content_type=FHIR_JSON)

    @extend_schema(summary="FHIR create (ServiceRequest: an order; Appointment: a booking)",
                   request={FHIR_JSON: OpenApiTypes.OBJECT},
                   responses={(201, FHIR_JSON): OpenApiResponse(OpenApiTypes.OBJECT),
                              400: OpenApiResponse(description="OperationOutcome: invalid."),
                              405: OpenApiResponse(description="A type ris does not create."),
                              409: OpenApiResponse(description="OperationOutcome: refused, "
                                                   "with the domain error code.")})
    def post(self, request: Request, resource_type: str) -> JsonResponse:
        if resource_type not in _CREATE:
            return _outcome(405, "not-supported", f"{resource_type} is read-only here")
        return _writing(_CREATE[resource_type], request)


@extend_schema(tags=["fhir"], summary="FHIR read",
               responses={(200, FHIR_JSON): OpenApiResponse(OpenApiTypes.OBJECT),
                          404: OpenApiResponse(description="No such resource.")})
class ReadView(FhirView):
    def get(self, request: Request, resource_type: str, pk: str) -> JsonResponse:
        if resource_type not in TYPES or not pk.isdigit():
            return _outcome(404, "not-found", f"{resource_type}/{pk} is not known")
        query, encode = TYPES[resource_type]
        obj = query({}).filter(pk=int(pk)).first()
        if obj is None:
            return _outcome(404, "not-found", f"{resource_type}/{pk} is not known")
        if isinstance(obj, Patient):  # a read of a patient's record, as through /api/v1/
            services.patient_viewed(patient=obj, actor=actor_of(request), channel="fhir")
        return JsonResponse(encode(obj), content_type=FHIR_JSON)

    @extend_schema(summary="FHIR update (Appointment: move, cancel, no-show)",
                   request={FHIR_JSON: OpenApiTypes.OBJECT},
                   responses={(200, FHIR_JSON): OpenApiResponse(OpenApiTypes.OBJECT),
                              400: OpenApiResponse(description="OperationOutcome: invalid."),
                              405: OpenApiResponse(description="A type ris does not update."),
                              409: OpenApiResponse(description="OperationOutcome: refused.")})
    def put(self, request: Request, resource_type: str, pk: str) -> JsonResponse:
        if resource_type != "Appointment" or not pk.isdigit():
            return _outcome(405, "not-supported", f"{resource_type} is not updated here")
        return _writing(_update_appointment, request, int(pk))


def _body(request: Request):
    try:
        return json.loads(request.body or b"null")
    except ValueError as exc:
        raise writes.WriteError(f"the body is not JSON: {exc}") from exc


def _station(ae_title: str) -> Device | None:
    if not ae_title:
        return None
    device = Device.objects.filter(ae_title=ae_title, active=True).first()
    if device is None:
        raise DomainError(f"no active station has the AE title {ae_title!r}")
    return device


def _created(request: Request, resource_type: str, body: dict) -> JsonResponse:
    response = JsonResponse(body, status=201, content_type=FHIR_JSON)
    response["Location"] = request.build_absolute_uri(f"/fhir/{resource_type}/{body['id']}")
    return response


def _create_service_request(request: Request) -> JsonResponse:
    """A new order, as an HL7 new order (ORM/OMI NW) makes one: ``services.order_create``."""
    wanted = writes.service_request(_body(request))
    patient = Patient.objects.filter(pk=wanted.patient_id, merged_into__isnull=True).first()
    if patient is None:
        raise DomainError(f"Patient/{wanted.patient_id} is not known",
                          code=ErrorCode.NOT_FOUND)
    procedure_type = ProcedureType.objects.filter(code_value=wanted.procedure_code,
                                                  active=True).first()
    if procedure_type is None:
        raise DomainError(f"no procedure of the catalogue has the code "
                          f"{wanted.procedure_code!r}", code=ErrorCode.UNKNOWN_PROCEDURE)
    order = services.order_create(
        patient=patient,
        procedures=[services.ProcedureRequest(procedure_type=procedure_type,
                                              scheduled_start=wanted.start,
                                              station=_station(wanted.station_ae))],
        actor=actor_of(request), source=Order.Source.API, priority=wanted.priority,
        placer_order_number=wanted.placer_order_number,
        requesting_physician=wanted.requesting_physician, reason=wanted.reason,
        comments=wanted.comments,
    )
    rp = _service_requests(QueryDict()).filter(order=order).first()
    return _created(request, "ServiceRequest", resources.service_request(rp))


def _book(request: Request, step: ScheduledProcedureStep, booking: writes.Booking) -> None:
    """Book or move a step as the front desk does (forward only: ``refuse_past``)."""
    if booking.start is None:
        raise writes.WriteError("start is required to book an appointment")
    services.step_schedule(
        step=step, start=booking.start, station=_station(booking.station_ae),
        duration_minutes=booking.minutes, actor=actor_of(request), refuse_past=True,
    )


def _create_appointment(request: Request) -> JsonResponse:
    booking = writes.appointment(_body(request))
    if booking.status != "booked":
        raise writes.WriteError("a new appointment is \"booked\"")
    if booking.service_request_id is None:
        raise writes.WriteError("basedOn (the ServiceRequest to book) is required")
    step = ScheduledProcedureStep.objects.filter(
        requested_procedure_id=booking.service_request_id, status=StepStatus.UNSCHEDULED
    ).order_by("pk").first()
    if step is None:
        raise DomainError(f"ServiceRequest/{booking.service_request_id} has no step waiting "
                          "for an appointment", code=ErrorCode.NOT_FOUND)
    _book(request, step, booking)
    return _created(request, "Appointment", _appointment(_appointments(QueryDict()).get(
        pk=step.pk)))


def _update_appointment(request: Request, pk: int) -> JsonResponse:
    step = _appointments(QueryDict()).filter(pk=pk).first()
    if step is None:
        return _outcome(404, "not-found", f"Appointment/{pk} is not known")
    booking = writes.appointment(_body(request))
    actor = actor_of(request)
    if booking.status == "cancelled":
        services.step_transition(step=step, to=StepStatus.CANCELED, actor=actor,
                                 reason=booking.reason or "appointment cancelled")
    elif booking.status == "noshow":
        services.step_no_show(step=step, actor=actor)
    elif booking.status == "booked":
        _book(request, step, booking)
    else:
        raise writes.WriteError(f"ris changes an appointment to booked, cancelled or noshow, "
                                f"not {booking.status!r} (the modality reports the rest)")
    return JsonResponse(_appointment(_appointments(QueryDict()).get(pk=pk)),
                        content_type=FHIR_JSON)


_CREATE = {"ServiceRequest": _create_service_request, "Appointment": _create_appointment}


def _writing(handler, *args) -> JsonResponse:
    try:
        return handler(*args)
    except writes.WriteError as exc:
        return _outcome(400, "invalid", str(exc))
    except DomainError as exc:
        return _refused(exc)
