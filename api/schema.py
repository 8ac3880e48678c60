"""OpenAPI generation: drf-spectacular's AutoSchema plus the error responses every view can give.

The error statuses are documented on every operation so that clients (and the schemathesis run in
the test suite) know the shape of a 400, 401, 403, 404 and 409 as well as of a success.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Body of every error except validation errors."""

    detail = serializers.CharField(help_text="What went wrong, written for the person who sent it.")
    code = serializers.CharField(
        help_text="Stable machine-readable code, e.g. invalid_transition, schedule_conflict, "
        "duplicate, not_found, not_authenticated, permission_denied."
    )


class ValidationErrorSerializer(serializers.Serializer):
    """Validation errors: each invalid field (or ``non_field_errors``) with its messages.

    Nested objects give nested messages (``{"procedures": [{"station": ["..."]}]}``), so the
    values are free-form; a request refused for another reason has ``detail`` and ``code``.
    """

    non_field_errors = serializers.ListField(child=serializers.CharField(), required=False)


_VALIDATION = OpenApiResponse(
    ValidationErrorSerializer, description="Invalid input: messages per field."
)
_NOT_AUTHENTICATED = OpenApiResponse(
    ErrorSerializer, description="No valid session or token was given."
)
_FORBIDDEN = OpenApiResponse(ErrorSerializer, description="The user's role does not allow this.")
_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object (or page).")
_CONFLICT = OpenApiResponse(
    ErrorSerializer,
    description="The domain refused the change: invalid status transition, schedule conflict, "
    "duplicate, or an object still in use.",
)


class RisAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        extra = {"400": _VALIDATION, "401": _NOT_AUTHENTICATED, "403": _FORBIDDEN}
        if "{" in self.path or self._is_list_view():
            # Detail views answer 404 for a missing object, list views for a page past the end.
            extra["404"] = _NOT_FOUND
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            extra["409"] = _CONFLICT
        for code, response in extra.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code)
        return responses
