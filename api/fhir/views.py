"""The FHIR R4 facade's endpoints (read and search, JSON): thin reads over the worklist models,
encoded by ``api.fhir.resources``. Errors are OperationOutcome resources (FHIR R4 3.1.0.4)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import APIException
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from api.fhir import resources
from api.permissions import ANY_ROLE, HasRole
from api.views import AUTHENTICATION, actor_of
from worklist import services
from worklist.models import Patient, RequestedProcedure, ScheduledProcedureStep

FHIR_JSON = "application/fhir+json"
MAX_COUNT = 200


def _outcome(status: int, code: str, text: str) -> JsonResponse:
    body = {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return JsonResponse(body, status=status, content_type=FHIR_JSON)


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


TYPES = {
    "Patient": (_patients, resources.patient),
    "ServiceRequest": (_service_requests, resources.service_request),
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
        params = {k: v for k, v in request.query_params.items()}
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
        here = {k: v for k, v in params.items() if k not in ("_count", "_offset")}

        def page(at: int) -> str:
            query_string = "&".join(f"{k}={v}" for k, v in {**here, "_count": count,
                                                            "_offset": at}.items())
            return f"{base}/{resource_type}?{query_string}"

        links = {"base": base, "self": page(offset)}
        if offset + count < total:
            links["next"] = page(offset + count)
        if offset > 0:
            links["previous"] = page(max(offset - count, 0))
        body = resources.bundle([encode(r) for r in rows], total=total, links=links)
        return JsonResponse(body, content_type=FHIR_JSON)


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
