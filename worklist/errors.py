"""Domain errors with stable codes, which each interface maps to its own protocol error.

HL7 turns them into an AE with an ERR segment, DICOM into a failure status with an Error Comment,
the web UI into a form message and the REST API into a 4xx. Keeping the code enumerated here means
every interface reports the same problem the same way.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_TRANSITION = "invalid_transition"
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"
    SCHEDULE_CONFLICT = "schedule_conflict"
    OUTSIDE_OPENING_HOURS = "outside_opening_hours"
    IN_THE_PAST = "in_the_past"
    NOTHING_TO_UNDO = "nothing_to_undo"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_PROCEDURE = "unknown_procedure"


class DomainError(Exception):
    """A request that the domain refuses; ``message`` is written for the person who sent it.

    ``params`` hold the message's facts (station, times, statuses) as plain values, so an
    interface that speaks another language (the zh-Hans web UI) can say the same in its own words
    instead of showing the English ``message``.
    """

    code: ErrorCode = ErrorCode.INVALID_VALUE

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, params: dict | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.params = params or {}
        if code is not None:
            self.code = code


class InvalidTransition(DomainError):
    code = ErrorCode.INVALID_TRANSITION


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Duplicate(DomainError):
    code = ErrorCode.DUPLICATE


class ScheduleConflict(DomainError):
    code = ErrorCode.SCHEDULE_CONFLICT


class UnknownProcedure(DomainError):
    code = ErrorCode.UNKNOWN_PROCEDURE
