"""What every DICOMweb resource shares: authentication as the REST API, the calling device,
the Warning header of PS3.18 8.3.4 and errors in the REST API's ``{"detail", "code"}`` shape."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpRequest
from pydicom import Dataset
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import NotAcceptable, ParseError, PermissionDenied
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from dicomweb import media
from ris.roles import ANY_ROLE, has_role
from worklist import selectors
from worklist.models import Device

#: Token first, as the REST API: an anonymous request is answered 401 with WWW-Authenticate.
AUTHENTICATION = [TokenAuthentication, SessionAuthentication]


class DeviceOrRole(BasePermission):
    """A ris user with a role, or the API account of an active Device (a modality or a node
    that authenticates as itself and holds no role)."""

    message = "This account has no ris role and stands for no device."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        return has_role(user, *ANY_ROLE) or selectors.device_for_user(user) is not None


class JSONErrorsNegotiation(BaseContentNegotiation):
    """DRF's negotiation only picks the renderer of errors (always JSON); the DICOM media
    type of a success is negotiated by the view itself (``dicomweb.media.negotiate``)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type

    def select_parser(self, request, parsers):
        for parser in parsers:
            if request.content_type and request.content_type.split(";")[0].strip() in (
                parser.media_type,
                "application/json",
            ):
                return parser
        return parsers[0] if parsers else None


def service_uri(request: HttpRequest) -> str:
    """``<service>`` of a Warning header: the base URI of the DICOMweb origin server."""
    return request.build_absolute_uri("/dicomweb")


def warning(request: HttpRequest, text: str) -> str:
    """One warn-value of a Warning header field, in the form PS3.18 8.3.4.2 writes it:
    ``299 <service>: <text>``."""
    return f"299 {service_uri(request)}: {text}"


def search_media(request) -> str:
    """The DICOM media type a search answers in (PS3.18 8.7), or 406 when Accept names none."""
    answer_as = media.negotiate(request.headers.get("Accept"))
    if answer_as is None:
        raise NotAcceptable("ris answers application/dicom+json or multipart/related.")
    return answer_as


def querying_device(request) -> Device | None:
    """The device the authenticated account stands for (Device.api_user), refused as its
    C-FIND would be when it may not query the worklist."""
    device = selectors.device_for_user(request.user)
    if device is not None and not device.may_query_worklist:
        raise PermissionDenied(f"{device.ae_title} may not query the worklist")
    return device


def require_known_device(device: Device | None) -> None:
    """With RIS_DICOM_REQUIRE_KNOWN_AE, only a configured device may query, over the web as
    over DIMSE: an account that stands for none is refused (403)."""
    if device is None and settings.RIS_DICOM_REQUIRE_KNOWN_AE:
        raise PermissionDenied("This account stands for no device (Device.api_user).")


class DicomJSONParser(BaseParser):
    """A request payload in ``application/dicom+json`` (PS3.18 8.7.3.2), or plain JSON."""

    media_type = media.DICOM_JSON

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read()


def payload_dataset(request: Request) -> Dataset:
    """The one dataset of the request body: a DICOM JSON object, or an array holding one."""
    try:
        value = json.loads(request.body or b"null")
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, dict):
            raise ValueError("the payload must be one DICOM JSON dataset")
        ds = Dataset.from_json(value)
        list(ds.iterall())  # decode every value now, not halfway through validation
    except Exception as exc:  # noqa: BLE001 - pydicom and json raise many types for bad input
        raise ParseError(f"Not a DICOM JSON dataset: {exc}") from exc
    return ds
