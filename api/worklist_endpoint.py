"""``POST /api/v1/worklist/``: the Modality Worklist, queried as a modality does, as DICOM JSON.

The body carries a C-FIND identifier as DICOM JSON (PS3.18 F.2), optionally with the AE title of
the modality to answer as. The answer is what the MWL SCP sends that modality for the same
identifier, item for item, as a DICOM JSON array: the same matching (``worklist.matching``), the
same rows (``worklist.selectors``), the same projection onto the requested keys and character set
(``worklist.dicom.ResponseBuilder``). A web client and a modality therefore see the same worklist.
Only DIMSE is translated: refusals the SCP reports as a C-FIND failure status are 4xx here.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.plumbing import build_array_type, build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from pydicom import Dataset
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.permissions import ANY_ROLE, HasRole
from api.views import AUTHENTICATION
from worklist import selectors
from worklist.dicom import ResponseBuilder
from worklist.matching import MatchError, worklist_query

EXAMPLE_IDENTIFIER = {
    "00100010": {"vr": "PN"},
    "00100020": {"vr": "LO"},
    "00080050": {"vr": "SH"},
    "00400100": {
        "vr": "SQ",
        "Value": [
            {
                "00400001": {"vr": "AE", "Value": ["CT1"]},
                "00400002": {"vr": "DA", "Value": ["20261201"]},
                "00400009": {"vr": "SH"},
            }
        ],
    },
}


class WorklistQuerySerializer(serializers.Serializer):
    identifier = serializers.JSONField(
        help_text="The C-FIND identifier as a DICOM JSON object (PS3.18 F.2): matching keys "
        "with a Value, return keys without."
    )
    calling_ae_title = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        help_text="Answer as the MWL SCP answers this modality: its character set, and only "
        "its own steps when the device is restricted to them.",
    )

    def validate_identifier(self, value) -> Dataset:
        if not isinstance(value, dict):
            raise ValidationError("A DICOM JSON object is required.")
        try:
            identifier = Dataset.from_json(value)
            list(identifier.iterall())  # every value decoded now, not halfway through matching
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad JSON
            raise ValidationError(f"Not a valid DICOM JSON dataset: {exc}") from exc
        return identifier


@extend_schema(
    request=WorklistQuerySerializer,
    responses={
        200: OpenApiResponse(
            build_array_type(build_basic_type(OpenApiTypes.OBJECT)),
            description="A JSON array of DICOM JSON datasets, one per matching scheduled step.",
        )
    },
    examples=[
        OpenApiExample(
            "CT1, one day",
            value={"identifier": EXAMPLE_IDENTIFIER, "calling_ae_title": "CT1"},
            request_only=True,
        )
    ],
    description=__doc__,
)
class WorklistView(APIView):
    """Query the Modality Worklist as DICOM JSON."""

    authentication_classes = AUTHENTICATION
    permission_classes = [HasRole]
    parser_classes = [JSONParser]
    #: A query, not a change: every role may ask.
    write_roles = ANY_ROLE

    def post(self, request: Request) -> Response:
        data = WorklistQuerySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        identifier: Dataset = data.validated_data["identifier"]
        calling_ae = data.validated_data.get("calling_ae_title", "").strip()
        device = selectors.device_for_ae(calling_ae) if calling_ae else None
        if device is not None and not device.may_query_worklist:
            raise PermissionDenied(f"{calling_ae} may not query the worklist")
        station = calling_ae if device is not None and device.restrict_to_own_steps else None
        try:
            query = worklist_query(identifier, station_ae=station)
            limit = settings.RIS_MWL_MAX_MATCHES
            rows = list(selectors.worklist_rows(query, limit=limit + 1 if limit else None))
        except MatchError as exc:
            raise ValidationError({"identifier": [str(exc)]}) from exc
        if limit and len(rows) > limit:
            raise ValidationError({"identifier": [f"more than {limit} matches: narrow the query"]})
        charset = device.character_set if device is not None else None
        builder = ResponseBuilder(
            identifier,
            character_set=charset or settings.RIS_MWL_DEFAULT_CHARACTER_SET,
            name_profile=device.name_profile if device is not None else "",
        )
        return Response([builder.dataset(row).to_json_dict() for row in rows])
