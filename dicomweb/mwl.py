"""MWL-RS: the Modality Scheduled Procedure Steps resource (PS3.18 chapter 14), a thin adapter.

``GET /dicomweb/modality-scheduled-procedure-steps?...`` -> ``dicomweb.query`` turns the query
parameters into the C-FIND identifier a modality would send -> ``worklist.matching`` builds the
one query -> ``worklist.selectors`` reads the rows -> ``worklist.dicom.ResponseBuilder`` projects
each onto the requested keys. The same functions serve the MWL C-FIND SCP, so a web client and a
modality get the same items. The calling device is the Device whose ``api_user`` is the
authenticated account: its right to query, its character set and its restriction to its own
steps apply as they do to its C-FIND. What is decided here is only HTTP: statuses (PS3.18 Table
14.4.3-1), Warning headers (PS3.18 8.3.4), paging and the media type.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.views import APIView

from dicomweb import media
from dicomweb.common import (
    AUTHENTICATION,
    DeviceOrRole,
    JSONErrorsNegotiation,
    querying_device,
    require_known_device,
    search_media,
    warning,
)
from dicomweb.query import QueryParameterError, parse_search
from worklist import selectors
from worklist.dicom import ResponseBuilder
from worklist.matching import MatchError, worklist_query

TOO_MANY = (
    "The number of results exceeded the maximum supported by the server. "
    "Additional results can be requested."
)
_UNSUPPORTED_OPTION = {
    "fuzzymatching": "The fuzzymatching parameter is not supported. "
    "Only literal matching has been performed.",
    "emptyvaluematching": "The emptyvaluematching parameter is not supported. "
    "Only non-empty values have been matched.",
    "multiplevaluematching": "The multiplevaluematching parameter is not supported. "
    "Only single values have been matched.",
}


def _max_results() -> int | None:
    return settings.RIS_MWL_MAX_MATCHES or None


@extend_schema(
    operation_id="dicomweb_mwl_search",
    tags=["dicomweb"],
    summary="MWL-RS: search the Modality Scheduled Procedure Steps (PS3.18 14.4)",
    description=__doc__,
    parameters=[
        OpenApiParameter(
            "includefield",
            str,
            description="Return keys: keywords or tags (comma-separated or repeated, dotted "
            "through sequences), or `all`. Without it every supported attribute is returned.",
            many=True,
        ),
        OpenApiParameter("limit", int, description="At most this many results."),
        OpenApiParameter("offset", int, description="Skip this many results first."),
        OpenApiParameter(
            "fuzzymatching",
            bool,
            description="Not supported: `true` gives literal matching and a Warning header.",
        ),
        OpenApiParameter(
            "PatientID",
            str,
            description="Any other parameter is a matching key: a keyword or tag "
            "(`ScheduledProcedureStepSequence.Modality=CT`, `00100020=PID-1`) with a value "
            "matched as in C-FIND (wild cards, DA/TM ranges, UID lists).",
        ),
    ],
    responses={
        (200, media.DICOM_JSON): OpenApiResponse(
            build_array_type(build_basic_type(OpenApiTypes.OBJECT)),
            description="A DICOM JSON array (PS3.18 F.2), one dataset per scheduled step.",
        ),
        204: OpenApiResponse(description="No scheduled step matches."),
        406: OpenApiResponse(description="Accept names no DICOM media type ris writes."),
    },
)
class ModalityScheduledProcedureStepsView(APIView):
    """Search for scheduled procedure steps as a modality's C-FIND does."""

    authentication_classes = AUTHENTICATION
    permission_classes = [DeviceOrRole]
    content_negotiation_class = JSONErrorsNegotiation

    def get(self, request: Request) -> HttpResponse:
        answer_as = search_media(request)
        device = querying_device(request)
        require_known_device(device)
        try:
            search = parse_search(request.query_params.lists())
        except QueryParameterError as exc:
            raise ValidationError({"detail": str(exc), "code": "invalid_query"}) from exc
        identifier = search.identifier
        station = device.ae_title if device is not None and device.restrict_to_own_steps else None
        maximum = _max_results()
        page = search.limit if search.limit else maximum
        if maximum is not None and page is not None:
            page = min(page, maximum)
        try:
            query = worklist_query(identifier, station_ae=station)
            wanted = None if page is None else search.offset + page + 1
            rows = list(selectors.worklist_rows(query, limit=wanted))
        except MatchError as exc:
            raise ValidationError({"detail": str(exc), "code": "invalid_query"}) from exc
        warnings = [warning(request, _UNSUPPORTED_OPTION[o]) for o in search.unsupported_options]
        unsupported = selectors.unsupported_keys(identifier)
        if unsupported:
            names = ", ".join(f"{tag:08X}" for tag in unsupported)
            warnings.append(
                warning(request, f"The following attributes are not supported: {names}")
            )
        selected = rows[search.offset :]
        if page is not None and len(selected) > page:
            selected = selected[:page]
            if not search.limit or search.limit > page:
                warnings.append(warning(request, TOO_MANY))
        charset = device.character_set if device is not None else None
        builder = ResponseBuilder(
            identifier, character_set=charset or settings.RIS_MWL_DEFAULT_CHARACTER_SET
        )
        if not selected:
            response = HttpResponse(status=204)
        else:
            body, content_type = media.render_worklist(builder, selected, answer_as)
            response = HttpResponse(body, content_type=content_type)
        if warnings:
            response["Warning"] = ", ".join(warnings)
        return response
