"""UPS-RS: ris's scheduled steps as Unified Procedure Step workitems (PS3.18 chapter 11, PS3.4
Annex CC), a thin adapter.

Search (``GET /workitems``) and Retrieve (``GET /workitems/{uid}``) read the steps through the MWL
matching engine (``worklist.ups.mwl_identifier`` maps the UPS keys onto an MWL identifier);
Change State (``PUT /workitems/{uid}/state``) claims a step with a Transaction UID (IN PROGRESS:
the step STARTED) and ends it (COMPLETED, CANCELED: the step COMPLETED or DISCONTINUED) through
``worklist.services``, the one state machine; Request Cancellation (``POST
/workitems/{uid}/cancelrequest``) cancels a step that is still SCHEDULED and asks the performer of
a claimed one (a UPS Cancel Requested event); Create (``POST /workitems``) books an order as the
REST API's order creation does; Update (``POST /workitems/{uid}``) moves a SCHEDULED step or
reports a claimed one's progress; Subscribe/Unsubscribe/Suspend (``.../subscribers/{AE}``) keep
``worklist.UpsSubscription`` rows, whose events the event channel (``dicomweb.events``, its own
WebSocket listener) delivers. What is decided here is only HTTP: PS3.18 11.x statuses and
Warning headers.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

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
    require_known_device,
    search_media,
    warning,
)
from dicomweb.query import CONTROL, QueryParameterError
from ris.roles import FRONT_DESK, TECHNOLOGIST, has_role
from worklist import selectors, services, ups
from worklist.audit import Actor
from worklist.errors import DomainError, ErrorCode
from worklist.matching import MatchError
from worklist.models import (
    Device,
    Order,
    Patient,
    ProcedureType,
    ScheduledProcedureStep,
    StepStatus,
)
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


#: The HTTP status of each domain refusal of a UPS-RS request (PS3.18 11.4.3-11.11.3): a state
#: the workitem is in, or a booking that clashes, is 409; an unknown subscription 404; a value
#: ris cannot take 400. A UPS refusal (``services.UpsRefused``) is always 409.
HTTP_STATUS_OF_CODE: dict[ErrorCode, int] = {
    ErrorCode.INVALID_TRANSITION: 409,
    ErrorCode.DUPLICATE: 409,
    ErrorCode.SCHEDULE_CONFLICT: 409,
    ErrorCode.OUTSIDE_OPENING_HOURS: 409,
    ErrorCode.IN_THE_PAST: 409,
    ErrorCode.NOTHING_TO_UNDO: 409,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID_VALUE: 400,
    ErrorCode.UNKNOWN_PROCEDURE: 400,
}


def _refusal(request: Request, exc: DomainError) -> Response:
    """A refused request with the reason as Warning (PS3.18 8.3.4) and in the body; a UPS
    refusal also names its DIMSE failure status (PS3.4 Table CC.2.1-2)."""
    status = getattr(exc, "status", None)
    http = 409 if status is not None else HTTP_STATUS_OF_CODE[exc.code]
    body = {"detail": exc.message, "code": str(exc.code)}
    if status is not None:
        body["dimse_status"] = f"{status:04X}"
    response = Response(body, status=http)
    response["Warning"] = warning(request, exc.message)
    return response


def _invalid(request: Request, text: str) -> Response:
    return _refusal(request, DomainError(text))


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
        require_known_device(device)
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
        operation_id="dicomweb_ups_create",
        summary="UPS-RS: create a workitem (PS3.18 11.4)",
        description="The payload is a SCHEDULED UPS (PS3.4 Table CC.2.5-3): Patient ID (and "
        "name, to register a new patient), Scheduled Workitem Code Sequence (a procedure code "
        "of the catalogue), Scheduled Station Name Code Sequence (the station's AE title), "
        "Scheduled Procedure Step Start DateTime, optionally Scheduled Procedure Step Priority "
        "and Referenced Request Sequence > Accession Number. ris books it as an order with one "
        "step, as the REST API would, and assigns the workitem UID (a `workitem` query "
        "parameter is refused).",
        request={media.DICOM_JSON: OpenApiTypes.OBJECT},
        responses={
            201: OpenApiResponse(description="Created; Location names the workitem."),
            400: OpenApiResponse(description="A required attribute is missing or invalid."),
            409: OpenApiResponse(description="The booking clashes (station, opening hours)."),
        },
    )
    def post(self, request: Request) -> Response | HttpResponse:
        if not has_role(request.user, *FRONT_DESK):
            raise PermissionDenied("Only the front desk creates workitems.")
        if "workitem" in request.query_params:
            return _invalid(request, "ris assigns the workitem UID: omit the workitem parameter")
        ds = payload_dataset(request)
        try:
            step = _create_workitem(request, ds)
        except DomainError as exc:
            return _refusal(request, exc)
        response = HttpResponse(status=201)
        response["Location"] = request.build_absolute_uri(
            f"/dicomweb/workitems/{ups.workitem_uid(step.pk)}"
        )
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
        operation_id="dicomweb_ups_update",
        summary="UPS-RS: update a workitem (PS3.18 11.6)",
        description="A SCHEDULED workitem: a new Scheduled Procedure Step Start DateTime "
        "and/or Scheduled Station Name Code Sequence moves the step (the scheduling service: "
        "clashes and opening hours are checked). An IN PROGRESS one, with its claimer's "
        "Transaction UID (query parameter `transaction` or (0008,1195)): Procedure Step "
        "Progress Information Sequence is a progress report to the subscribers. Other "
        "attributes are refused by name.",
        parameters=[OpenApiParameter("transaction", str)],
        request={media.DICOM_JSON: OpenApiTypes.OBJECT},
        responses={
            200: OpenApiResponse(description="Updated."),
            400: OpenApiResponse(description="An attribute ris does not update."),
            404: OpenApiResponse(description="No workitem has this UID."),
            409: OpenApiResponse(description="The state or Transaction UID does not allow it."),
        },
    )
    def post(self, request: Request, uid: str) -> Response | HttpResponse:
        step = _step_for(uid)
        ds = payload_dataset(request)
        try:
            values = ups.update_request(ds)
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            return _invalid(request, str(exc))
        transaction_uid = request.query_params.get("transaction") or str(
            ds.get("TransactionUID", "") or ""
        )
        try:
            state = UPS_STATE_OF_STEP.get(step.status)
            if state == "SCHEDULED":
                if values["progress"] is not None:
                    raise services.UpsRefused("the workitem is not IN PROGRESS",
                                              status=services.UPS_NOT_IN_PROGRESS)
                if not has_role(request.user, *FRONT_DESK):
                    raise PermissionDenied("Only the front desk moves a scheduled workitem.")
                if values["start"] or values["station_ae"]:
                    services.step_schedule(
                        step=step, start=values["start"] or step.scheduled_start,
                        station=_station(values["station_ae"]) if values["station_ae"] else None,
                        actor=_actor(request),
                    )
            else:
                _may_perform(request)
                if values["start"] or values["station_ae"]:
                    raise services.UpsRefused(
                        f"the workitem is {state}: its schedule may no longer change",
                        status=services.UPS_NO_LONGER_UPDATABLE,
                    )
                services.step_ups_progress(
                    step=step, transaction_uid=transaction_uid,
                    progress=values["progress"] or {}, actor=_actor(request),
                )
        except DomainError as exc:
            return _refusal(request, exc)
        return HttpResponse(status=200)


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
    "For Cancellation (0074,1238) of the optional payload as reason). For an IN PROGRESS one "
    "the request is passed to its performer as a UPS Cancel Requested event on the event "
    "channel; the performer decides (it ends the workitem CANCELED, or goes on).",
    request={media.DICOM_JSON: OpenApiTypes.OBJECT, "application/json": OpenApiTypes.OBJECT},
    responses={
        202: OpenApiResponse(description="Cancelled, or the request passed to the performer."),
        404: OpenApiResponse(description="No workitem has this UID."),
        409: OpenApiResponse(description="The workitem is COMPLETED or CANCELED."),
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
        reason, contact = "", {}
        if request.body:
            ds = payload_dataset(request)
            reason = str(ds.get("ReasonForCancellation", "") or "")
            contact = {
                "contact_name": str(ds.get("ContactDisplayName", "") or ""),
                "contact_uri": str(ds.get("ContactURI", "") or ""),
            }
        try:
            services.step_ups_cancel_request(
                step=step, actor=_actor(request), reason=reason,
                contact={k: v for k, v in contact.items() if v},
            )
        except DomainError as exc:
            return _refusal(request, exc)
        return HttpResponse(status=202)


def _station(ae_title: str) -> Device:
    device = Device.objects.filter(ae_title=ae_title, active=True).first()
    if device is None:
        raise DomainError(f"no active station has the AE title {ae_title!r}")
    return device


def _create_workitem(request: Request, ds) -> ScheduledProcedureStep:
    """Book the order a UPS Create asks for, as the REST API's order creation would: the
    patient (registered when new), the catalogue's procedure, the station and start."""
    try:
        values = ups.create_request(ds)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        # a value of the wrong kind (a sequence sent as a string) is the client's error too
        raise DomainError(f"not a workitem ris can create: {exc}") from exc
    actor = _actor(request)
    patient = Patient.objects.filter(
        patient_id=values["patient_id"], issuer=values["issuer"], merged_into__isnull=True
    ).first()
    if patient is None:
        if not values["patient_name"]:
            raise DomainError(f"patient {values['patient_id']} is not known: Patient's Name "
                              "(0010,0010) is required to register them")
        demographics = {"sex": values["sex"]} if values["sex"] else {}
        if values["birth_date"]:
            demographics["birth_date"] = _date(values["birth_date"])
        patient, _ = services.patient_upsert(
            patient_id=values["patient_id"], issuer=values["issuer"],
            name=values["patient_name"], actor=actor, **demographics,
        )
    procedure_type = ProcedureType.objects.filter(code_value=values["procedure_code"],
                                                  active=True).first()
    if procedure_type is None:
        raise DomainError(f"no procedure of the catalogue has the code "
                          f"{values['procedure_code']!r}", code=ErrorCode.UNKNOWN_PROCEDURE)
    station = _station(values["station_ae"]) if values["station_ae"] else None
    order = services.order_create(
        patient=patient,
        procedures=[services.ProcedureRequest(
            procedure_type=procedure_type, scheduled_start=values["start"], station=station,
            description=values["label"],
        )],
        actor=actor, source=Order.Source.API, priority=values["priority"],
        accession_number=values["accession_number"],
    )
    return ScheduledProcedureStep.objects.filter(requested_procedure__order=order).first()


def _date(text: str) -> dt.date:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError as exc:
        raise DomainError(f"{text!r} is not a DICOM date") from exc


def _subscriber(request: Request, ae_title: str) -> None:
    """A device's account subscribes only itself; a person with a role any AE (a node's
    operator setting it up)."""
    device = selectors.device_for_user(request.user)
    if device is not None and device.ae_title != ae_title:
        raise PermissionDenied(f"This account stands for {device.ae_title}, not {ae_title}.")


def event_channel_url(request: Request, ae_title: str) -> str:
    """The WebSocket address of an AE's event channel (PS3.18 11.x Open Event Channel), given
    as Content-Location of a subscription."""
    base = settings.RIS_UPS_EVENTS_URL.rstrip("/")
    if not base:
        _, _, port = settings.RIS_UPS_EVENTS_HTTP.rpartition(":")
        base = f"ws://{request.get_host().rsplit(':', 1)[0]}:{port}"
    return f"{base}/subscribers/{quote(ae_title)}"


_GLOBAL = (services.UPS_GLOBAL_SUBSCRIPTION_UID, services.UPS_FILTERED_GLOBAL_SUBSCRIPTION_UID)


@extend_schema(
    operation_id="dicomweb_ups_subscribe",
    tags=["dicomweb"],
    summary="UPS-RS: subscribe to a workitem's events, or globally (PS3.18 11.10)",
    description="`{uid}` is a workitem, or 1.2.840.10008.5.1.4.34.5 (every workitem, now and "
    "later), or 1.2.840.10008.5.1.4.34.5.1 with UPS matching keys as query parameters (the "
    "workitems that match). Events are delivered on the event channel named by "
    "Content-Location. DELETE unsubscribes (globally: from every workitem).",
    parameters=[OpenApiParameter("deletionlock", bool)],
    request=None,
    responses={
        201: OpenApiResponse(description="Subscribed; Content-Location is the event channel."),
        403: OpenApiResponse(description="A device's account names another AE."),
        404: OpenApiResponse(description="No workitem has this UID."),
    },
)
class SubscriptionView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation
    parser_classes = [DicomJSONParser]

    def post(self, request: Request, uid: str, ae_title: str) -> Response | HttpResponse:
        _subscriber(request, ae_title)
        step = None if uid in _GLOBAL else _step_for(uid)
        keys = None
        if uid == services.UPS_FILTERED_GLOBAL_SUBSCRIPTION_UID:
            keys = {k: v for k, v in request.query_params.items() if k != "deletionlock"}
            try:
                ups.mwl_identifier(keys)
            except ups.UnsupportedKey as exc:
                return _invalid(request, f"{exc} is not supported as a matching key")
        lock = request.query_params.get("deletionlock", "false").lower() == "true"
        try:
            services.ups_subscribe(ae_title=ae_title, step=step, deletion_lock=lock,
                                   filter_keys=keys, actor=_actor(request))
        except DomainError as exc:
            return _refusal(request, exc)
        response = HttpResponse(status=201)
        response["Content-Location"] = event_channel_url(request, ae_title)
        return response

    @extend_schema(operation_id="dicomweb_ups_unsubscribe",
                   summary="UPS-RS: unsubscribe (PS3.18 11.11)",
                   responses={200: OpenApiResponse(description="Unsubscribed.")})
    def delete(self, request: Request, uid: str, ae_title: str) -> Response | HttpResponse:
        _subscriber(request, ae_title)
        step = None if uid in _GLOBAL else _step_for(uid)
        services.ups_unsubscribe(ae_title=ae_title, step=step, actor=_actor(request))
        return HttpResponse(status=200)


@extend_schema(
    operation_id="dicomweb_ups_suspend_global_subscription",
    tags=["dicomweb"],
    summary="UPS-RS: suspend a global subscription (PS3.18 11.12)",
    description="Workitems created from now on are no longer included; the AE still gets the "
    "events of those the subscription already included.",
    request=None,
    responses={200: OpenApiResponse(description="Suspended."),
               404: OpenApiResponse(description="The AE holds no global subscription.")},
)
class SuspendSubscriptionView(APIView):
    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation
    parser_classes = [DicomJSONParser]

    def post(self, request: Request, uid: str, ae_title: str) -> Response | HttpResponse:
        _subscriber(request, ae_title)
        if uid not in _GLOBAL:
            return _invalid(request, "only a global subscription is suspended")
        try:
            services.ups_suspend_global(ae_title=ae_title, actor=_actor(request))
        except DomainError as exc:
            return _refusal(request, exc)
        return HttpResponse(status=200)
