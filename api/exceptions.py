"""Domain and database errors as HTTP responses: the API's side of ``worklist.errors``.

Every error body is ``{"detail": message, "code": code}``, except validation errors (400), which
keep DRF's ``{field: [messages]}`` shape so a client can put each message next to its field.
A domain refusal is never a 500: it is the client's request that the domain does not allow.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from worklist.errors import DomainError, ErrorCode

logger = logging.getLogger(__name__)

#: The HTTP status of each domain error code. A refused state change or a clash with what is
#: already stored is a conflict (409); a value the domain rejects is a bad request (400).
DOMAIN_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_TRANSITION: status.HTTP_409_CONFLICT,
    ErrorCode.DUPLICATE: status.HTTP_409_CONFLICT,
    ErrorCode.SCHEDULE_CONFLICT: status.HTTP_409_CONFLICT,
    ErrorCode.OUTSIDE_OPENING_HOURS: status.HTTP_409_CONFLICT,
    ErrorCode.IN_THE_PAST: status.HTTP_409_CONFLICT,
    ErrorCode.NOTHING_TO_UNDO: status.HTTP_409_CONFLICT,
    ErrorCode.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    ErrorCode.INVALID_VALUE: status.HTTP_400_BAD_REQUEST,
    ErrorCode.UNKNOWN_PROCEDURE: status.HTTP_400_BAD_REQUEST,
}


def domain_status(error: DomainError) -> int:
    return DOMAIN_STATUS[error.code]


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, extended with the domain's errors and the database's refusals."""
    if isinstance(exc, DomainError):
        return _error(domain_status(exc), exc.message, str(exc.code))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, ProtectedError | RestrictedError):
        return _error(
            status.HTTP_409_CONFLICT,
            "This object is still referenced by others and cannot be deleted; "
            "deactivate it instead.",
            "protected",
        )
    elif isinstance(exc, IntegrityError):
        # A race the serializer's uniqueness check could not see (two clients at once).
        logger.info("integrity error on %s: %s", _where(context), exc)
        return _error(
            status.HTTP_409_CONFLICT, "This conflicts with data stored meanwhile.", "conflict"
        )
    elif isinstance(exc, DataError):
        # A value the database cannot hold (out of range, NUL byte) that validation let through.
        logger.warning("data error on %s: %s", _where(context), exc)
        return _error(
            status.HTTP_400_BAD_REQUEST, "A value is out of range or malformed.", "invalid"
        )

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        if isinstance(response.data, list):
            response.data = {"non_field_errors": response.data}
        return response
    if isinstance(response.data, dict) and "detail" in response.data:
        response.data["code"] = _code(exc)
    return response


def _code(exc: Exception) -> str:
    if isinstance(exc, Http404):
        return "not_found"
    if isinstance(exc, DjangoPermissionDenied):
        return "permission_denied"
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        return codes if isinstance(codes, str) else exc.default_code
    return "error"


def _error(status_code: int, message: str, code: str) -> Response:
    return Response({"detail": message, "code": code}, status=status_code)


def _where(context: dict) -> str:
    request = context.get("request")
    return f"{request.method} {request.path}" if request is not None else "?"
