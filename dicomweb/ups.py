"""UPS-RS: ris's scheduled steps as Unified Procedure Step workitems (PS3.18 chapter 11, PS3.4
Annex CC), a thin adapter.

Search (``GET /workitems``) and Retrieve (``GET /workitems/{uid}``) read the steps through the MWL
matching engine (``worklist.ups.mwl_identifier`` maps the UPS keys onto an MWL identifier);
Change State (``PUT /workitems/{uid}/state``) claims a step with a Transaction UID (IN PROGRESS:
the step STARTED) and ends it (COMPLETED, CANCELED: the step COMPLETED or DISCONTINUED) through
``worklist.services``, the one state machine; Request Cancellation (``POST
/workitems/{uid}/cancelrequest``) cancels a step that is still SCHEDULED. What is decided here is
only HTTP: PS3.18 11.x statuses and Warning headers.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import (
    NotFound,
    PermissionDenied,
    ValidationError,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dicomweb import media
from dicomweb.common import (
    AUTHENTICATION,
    DeviceOrRole,
    DicomJSONParser,
    JSONErrorsNegotiation,
    payload_dataset,
    querying_device,
    search_media,
    warning,
)
from dicomweb.query import CONTROL, QueryParameterError
from ris.roles import TECHNOLOGIST, has_role
from worklist import selectors, services, ups
from worklist.audit import Actor
from worklist.errors import DomainError
from worklist.matching import MatchError
from worklist.models import StepStatus
from worklist.states import UPS_STATE_OF_STEP

TOO_MANY = (
    "The number of results exceeded the maximum supported by the server. "
    "Additional results can be requested."
)


def _actor(request: Request) -> Actor:
    device = selectors.device_for_user(request.user)
    return Actor.ae(device.ae_title) if device is not None else Actor.for_user(request.user)


def _may_perform(request: Request) -> None:
    """Claiming and ending work is the performer's: a device's account or a technologist."""
    is_device = selectors.device_for_user(request.user) is not None
    if not is_device and not has_role(request.user, *TECHNOLOGIST):
        raise PermissionDenied("Only a device's account or a technologist may change workitems.")


def _step_for(uid: str):
    pk = ups.step_pk(uid)
    step = selectors.step_by_pk(pk) if pk is not None else None
    if step is None or step.status == StepStatus.UNSCHEDULED:
        raise NotFound("No workitem has this UID.")
    return step


def _refusal(request: Request, exc: DomainError) -> Response:
    """A refused change: 409 (PS3.18 Table 11.7.3-1, 11.9.3-1) with the reason as Warning; a
    value the domain rejects (no Transaction UID, an unknown state) is 400."""
    status = getattr(exc, "status", None)
    http = 409 if status is not None or exc.code.value == "invalid_transition" else 400
    body = {"detail": exc.message, "code": str(exc.code)}
    if status is not None:
        body["dimse_status"] = f"{status:04X}"
    response = Response(body, status=http)
    response["Warning"] = warning(request, exc.message)
    return response


@extend_schema(
    operation_id="dicomweb_ups_search",
    tags=["dicomweb"],
    summary="UPS-RS: search the workitems (PS3.18 11.9)",
    description=__doc__,
    parameters=[
        OpenApiParameter("ProcedureStepState", str, description="SCHEDULED, IN PROGRESS, "
                         "COMPLETED, CANCELED (backslash-separated for several)."),
        OpenApiParameter("limit", int), OpenApiParameter("offset", int),
    ],
    responses={
        (200, media.DICOM_JSON): OpenApiResponse(
            build_array_type(build_basic_type(OpenApiTypes.OBJECT)),
            description="A DICOM JSON array of UPS workitems (PS3.4 Table CC.2.5-3).",
        ),
        204: OpenApiResponse(description="No workitem matches."),
        406: OpenApiResponse(description="Accept names no DICOM media type ris writes."),
    },
)
class WorkitemsView(APIView):
    """Search the workitems."""

    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation

    def get(self, request: Request) -> HttpResponse:
        answer_as = search_media(request)
        device = querying_device(request)
        keys, offset, limit, warnings = {}, 0, None, []
        try:
            for name, values in request.query_params.lists():
                if name not in CONTROL:
                    keys[name] = values[-1]
                elif name in ("limit", "offset"):
                    if not values[-1].isdigit():
                        raise QueryParameterError(f"{name} must be an unsigned integer")
                    offset, limit = (
                        (int(values[-1]), limit) if name == "offset" else (offset, int(values[-1]))
                    )
                elif name == "fuzzymatching" and values[-1].lower() == "true":
                    warnings.append(warning(request, "The fuzzymatching parameter is not "
                                            "supported. Only literal matching has been performed."))
            identifier, pks = ups.mwl_identifier(keys)
            restricted = device is not None and device.restrict_to_own_steps
            station = device.ae_title if restricted else None
            maximum = settings.RIS_MWL_MAX_MATCHES or None
            page = min(limit or maximum, maximum) if maximum else limit
            rows = selectors.workitem_rows(
                identifier, pks=pks, station_ae=station,
                limit=None if page is None else offset + page + 1,
            )
        except ups.UnsupportedKey as exc:
            raise ValidationError({"detail": f"{exc} is not supported as a matching key",
                                   "code": "invalid_query"}) from exc
        except (QueryParameterError, MatchError) as exc:
            raise ValidationError({"detail": str(exc), "code": "invalid_query"}) from exc
        selected = rows[offset:]
        if page is not None and len(selected) > page:
            selected = selected[:page]
            if not limit or limit > page:
                warnings.append(warning(request, TOO_MANY))
        if not selected:
            response = HttpResponse(status=204)
        else:
            body, content_type = media.render((ups.workitem(r) for r in selected), answer_as)
            response = HttpResponse(body, content_type=content_type)
        if warnings:
            response["Warning"] = ", ".join(warnings)
        return response


@extend_schema(
    operation_id="dicomweb_ups_retrieve",
    tags=["dicomweb"],
    summary="UPS-RS: retrieve a workitem (PS3.18 11.5)",
    responses={
        (200, media.DICOM_JSON): OpenApiResponse(
            build_array_type(build_basic_type(OpenApiTypes.OBJECT)),
            description="The workitem, as a DICOM JSON array of one dataset.",
        ),
        404: OpenApiResponse(description="No workitem has this UID."),
    },
)
class WorkitemView(APIView):
    """One workitem."""

    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation

    def get(self, request: Request, uid: str) -> HttpResponse:
        pk = ups.step_pk(uid)
        row = selectors.workitem_row(pk) if pk is not None else None
        if row is None:
            raise NotFound("No workitem has this UID.")
        body, content_type = media.render([ups.workitem(row)], media.JSON)
        return HttpResponse(body, content_type=content_type)


@extend_schema(
    operation_id="dicomweb_ups_change_state",
    tags=["dicomweb"],
    summary="UPS-RS: change a workitem's state (PS3.18 11.7)",
    description="Payload: Procedure Step State (0074,1000) and Transaction UID (0008,1195). "
    "IN PROGRESS with a new Transaction UID claims the workitem (the step STARTED; of "
    "concurrent claimers exactly one gets 200); COMPLETED or CANCELED with the claimer's "
    "Transaction UID ends it (the step COMPLETED or DISCONTINUED).",
    request={media.DICOM_JSON: OpenApiTypes.OBJECT, "application/json": OpenApiTypes.OBJECT},
    responses={
        200: OpenApiResponse(description="The state was changed."),
        404: OpenApiResponse(description="No workitem has this UID."),
        409: OpenApiResponse(description="The workitem's state or the Transaction UID does not "
                             "allow it; the Warning header says why."),
    },
)
class WorkitemStateView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation
    parser_classes = [DicomJSONParser]

    def put(self, request: Request, uid: str) -> Response | HttpResponse:
        _may_perform(request)
        step = _step_for(uid)
        ds = payload_dataset(request)
        state = str(ds.get("ProcedureStepState", "") or "").strip()
        transaction_uid = str(ds.get("TransactionUID", "") or "").strip()
        if not transaction_uid:
            return _refusal(request, DomainError("Transaction UID (0008,1195) is required"))
        try:
            if state == "IN PROGRESS":
                services.step_claim(step=step, transaction_uid=transaction_uid,
                                    actor=_actor(request))
            elif state in ("COMPLETED", "CANCELED"):
                services.step_ups_final(step=step, state=state, transaction_uid=transaction_uid,
                                        actor=_actor(request))
            else:
                raise DomainError(
                    f"Procedure Step State must be IN PROGRESS, COMPLETED or CANCELED, not "
                    f"{state!r}"
                )
        except DomainError as exc:
            return _refusal(request, exc)
        return HttpResponse(status=200)


@extend_schema(
    operation_id="dicomweb_ups_request_cancellation",
    tags=["dicomweb"],
    summary="UPS-RS: request the cancellation of a workitem (PS3.18 11.8)",
    description="A SCHEDULED workitem is cancelled at once (the step CANCELED, with the Reason "
    "For Cancellation (0074,1238) of the optional payload as reason). An IN PROGRESS one "
    "belongs to its performer: refused (409), as ris delivers no UPS events to ask it.",
    request={media.DICOM_JSON: OpenApiTypes.OBJECT, "application/json": OpenApiTypes.OBJECT},
    responses={
        202: OpenApiResponse(description="The workitem was cancelled."),
        404: OpenApiResponse(description="No workitem has this UID."),
        409: OpenApiResponse(description="The workitem is IN PROGRESS, COMPLETED or CANCELED."),
    },
)
class WorkitemCancelRequestView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation
    parser_classes = [DicomJSONParser]

    def post(self, request: Request, uid: str) -> Response | HttpResponse:
        _may_perform(request)
        step = _step_for(uid)
        reason = ""
        if request.body:
            ds = payload_dataset(request)
            reason = str(ds.get("ReasonForCancellation", "") or "")
        state = UPS_STATE_OF_STEP.get(step.status)
        if state != "SCHEDULED":
            return _refusal(
                request,
                services.UpsRefused(
                    f"The workitem is {state}: only a SCHEDULED one is cancelled on request",
                    status=services.UPS_ALREADY_IN_PROGRESS if state == "IN PROGRESS"
                    else services.UPS_NO_LONGER_UPDATABLE,
                ),
            )
        try:
            services.step_transition(
                step=step, to=StepStatus.CANCELED, actor=_actor(request),
                reason=reason or "UPS cancellation requested",
            )
        except DomainError as exc:
            return _refusal(request, exc)
        return HttpResponse(status=202)
