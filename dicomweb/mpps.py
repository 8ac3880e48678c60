"""MPPS-RS: the Modality Performed Procedure Steps resource (PS3.18 chapter 15), a thin adapter.

``POST .../modality-performed-procedure-steps/{uid}`` is the N-CREATE, ``POST ...{uid}?update``
the N-SET, ``GET ...{uid}`` the N-GET of the stored step. Each decodes the DICOM JSON payload and
calls ``mpps.services`` (``pps_create`` / ``pps_update``) exactly as the MPPS SCP does: the same
validation of PS3.4 F.7 (``mpps.validation``), the same linking to scheduled steps, the same step
statuses through the one state machine, the same audit and the same relay to the PACS as MPPS
over DIMSE (the ``pps_received`` signal, ``mpps.forwarding``). Only HTTP is decided here: the
DIMSE status of a refusal becomes the HTTP status of PS3.18 Tables 15.4.3-1 and 15.5.3-1.
"""

from __future__ import annotations

import json
import logging

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
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
    warning,
)
from mpps import selectors, services
from mpps.validation import (
    ATTRIBUTE_LIST_ERROR,
    DOMAIN_ERROR_STATUS,
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    INVALID_OBJECT_INSTANCE,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    NO_SUCH_SOP_INSTANCE,
    PROCESSING_FAILURE,
    MppsError,
    is_valid_uid,
    tag_label,
)
from worklist.audit import Actor
from worklist.errors import DomainError
from worklist.selectors import device_for_user

logger = logging.getLogger("dicomweb.mpps")

#: The HTTP status of each DIMSE failure status an MPPS refusal carries (PS3.18 15.4.3, 15.5.3):
#: a request the attributes of which PS3.4 F.7 refuses is 400; a UID in use at create is 409;
#: an unknown UID at update is 404; an update the stored step refuses (it is final, or the
#: change clashes with it: PROCESSING_FAILURE with or without Error ID A710H) is 409.
DIMSE_TO_HTTP: dict[int, int] = {
    INVALID_ATTRIBUTE_VALUE: status.HTTP_400_BAD_REQUEST,
    INVALID_OBJECT_INSTANCE: status.HTTP_400_BAD_REQUEST,
    MISSING_ATTRIBUTE: status.HTTP_400_BAD_REQUEST,
    MISSING_ATTRIBUTE_VALUE: status.HTTP_400_BAD_REQUEST,
    DUPLICATE_SOP_INSTANCE: status.HTTP_409_CONFLICT,
    NO_SUCH_SOP_INSTANCE: status.HTTP_404_NOT_FOUND,
    PROCESSING_FAILURE: status.HTTP_409_CONFLICT,
}


def http_status_of(dimse_status: int) -> int:
    """The HTTP status of a DIMSE failure status (503 for one PS3.18 gives no meaning to)."""
    return DIMSE_TO_HTTP.get(dimse_status, status.HTTP_503_SERVICE_UNAVAILABLE)


def _error(http_status: int, detail: str, code: str, dimse_status: int | None = None) -> Response:
    body = {"detail": detail, "code": code}
    if dimse_status is not None:
        body["dimse_status"] = f"{dimse_status:04X}"
    return Response(body, status=http_status)


def _actor(request: Request) -> tuple[Actor, str]:
    """Who reports: the device of the API account (as its calling AE title would), else the
    user."""
    device = device_for_user(request.user)
    if device is not None:
        return Actor.ae(device.ae_title), device.ae_title
    return Actor.for_user(request.user), ""


_SCHEMA_PAYLOAD = {
    media.DICOM_JSON: OpenApiTypes.OBJECT,
    "application/json": OpenApiTypes.OBJECT,
}


@extend_schema(tags=["dicomweb"])
class ModalityPerformedProcedureStepView(APIView):
    """One Modality Performed Procedure Step: create, update, retrieve."""

    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation
    parser_classes = [DicomJSONParser]

    @extend_schema(
        operation_id="dicomweb_mpps_create_or_update",
        summary="MPPS-RS: create (N-CREATE) or, with ?update, update (N-SET) a performed step",
        description=__doc__,
        parameters=[
            OpenApiParameter(
                "update",
                bool,
                description="Present (`?update`): the Update transaction (PS3.18 15.5); absent: "
                "Create (PS3.18 15.4).",
                allow_blank=True,
            )
        ],
        request=_SCHEMA_PAYLOAD,
        responses={
            200: OpenApiResponse(description="Updated (a Warning header names attributes "
                                 "ignored because only the create may set them)."),
            201: OpenApiResponse(description="Created."),
            404: OpenApiResponse(description="Update of an unknown performed step."),
            409: OpenApiResponse(description="UID in use (create); the step is final or "
                                 "refuses the change (update)."),
            503: OpenApiResponse(description="ris could not process it; nothing was stored."),
        },
    )
    def post(self, request: Request, uid: str) -> Response | HttpResponse:
        uid = uid.strip()
        if not is_valid_uid(uid):
            return _error(400, f"{uid[:64]!r} is not a valid SOP Instance UID", "invalid_uid")
        updating = "update" in request.query_params
        ds = payload_dataset(request)
        actor, ae_title = _actor(request)
        operation = "update" if updating else "create"
        try:
            if updating:
                _, ignored = services.pps_update(sop_instance_uid=uid, dataset=ds, actor=actor)
            else:
                services.pps_create(
                    sop_instance_uid=uid, dataset=ds, actor=actor, calling_ae_title=ae_title
                )
                ignored = ()
        except MppsError as exc:
            logger.warning("MPPS-RS %s %s by %s refused %04X: %s",
                           operation, uid, actor.name, exc.status, exc.comment)
            code = "no_longer_updatable" if exc.error_id else "invalid_pps"
            return _error(http_status_of(exc.status), exc.comment, code, exc.status)
        except DomainError as exc:
            return _error(
                http_status_of(DOMAIN_ERROR_STATUS[exc.code]), exc.message, str(exc.code)
            )
        except Exception:  # noqa: BLE001 - the client gets a status, ris keeps serving
            logger.exception("MPPS-RS %s %s by %s failed", operation, uid, actor.name)
            return _error(503, f"ris could not process the {operation}", "processing_failure")
        response = HttpResponse(status=200 if updating else 201)
        if not updating:
            response["Location"] = request.build_absolute_uri(request.path)
        if ignored:
            names = ", ".join(tag_label(tag).split(" ")[0] for tag in ignored)
            response["Warning"] = warning(
                request, f"Attributes not changed (set at create only): {names}"
            )
            response["X-DICOM-Status"] = f"{ATTRIBUTE_LIST_ERROR:04X}"
        return response

    @extend_schema(
        operation_id="dicomweb_mpps_retrieve",
        summary="MPPS-RS: retrieve a performed step (PS3.18 15.6)",
        responses={
            (200, media.DICOM_JSON): OpenApiResponse(
                OpenApiTypes.OBJECT, description="The performed step as received (N-CREATE "
                "merged with every N-SET), as DICOM JSON."
            ),
            404: OpenApiResponse(description="No performed step has this UID."),
        },
    )
    def get(self, request: Request, uid: str) -> HttpResponse:
        pps = selectors.performed_step(uid.strip())
        if pps is None:
            raise NotFound("No performed step has this SOP Instance UID.")
        body = json.dumps(pps.dataset, ensure_ascii=False).encode("utf-8")
        return HttpResponse(body, content_type=media.DICOM_JSON)
