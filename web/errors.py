"""What the web UI says when the domain refuses something: the web's side of ``worklist.errors``.

The domain's ``message`` is English and written for integrators; a front desk working in
Simplified Chinese must read the same refusal in its own language. Each ``ErrorCode`` has a
translated sentence here, filled from the error's ``params``; a test asserts the map is total,
so a new code cannot reach the screen as technical English.
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from web.notes import translate_clause
from worklist.errors import DomainError, ErrorCode
from worklist.models import SlotReservation, StepStatus
from worklist.scheduling import BookingWarning


def _status(value: str) -> str:
    try:
        return str(StepStatus(value).label).lower()
    except ValueError:
        return value


def _invalid_transition(params: dict) -> str:
    if "current" in params:
        return _(
            "This exam is already %(current)s, so it cannot become %(target)s. The page was out "
            "of date and now shows the current status."
        ) % {"current": _status(params["current"]), "target": _status(params["target"])}
    return _("This exam changed meanwhile: the page now shows its current status.")


def _schedule_conflict(params: dict) -> str:
    return _("%(station)s is booked from %(start)s for %(minutes)s min. Choose another slot.") % (
        params
    )


def _outside_hours(params: dict) -> str:
    if "why" in params:
        why = {
            "closed": _("outside its opening hours"),
            "HOLIDAY": _("holiday"),
            "DOWN": _("station down"),
            "MAINTENANCE": _("maintenance"),
        }.get(params["why"], params["why"])
        return _("%(station)s is closed at this time (%(why)s).") % {
            "station": params["station"], "why": why,
        }
    return _("%(station)s is open %(opens)s-%(closes)s.") % params


def _in_the_past(params: dict) -> str:
    return _("%(start)s is in the past: choose a later time.") % params


#: One translated sentence per error code. ``None`` params (a message without facts) get the
#: generic sentence of the second map.
_WITH_PARAMS = {
    ErrorCode.INVALID_TRANSITION: _invalid_transition,
    ErrorCode.SCHEDULE_CONFLICT: _schedule_conflict,
    ErrorCode.OUTSIDE_OPENING_HOURS: _outside_hours,
    ErrorCode.IN_THE_PAST: _in_the_past,
}


def _generic(code: ErrorCode) -> str:
    return {
        ErrorCode.INVALID_TRANSITION: _(
            "This exam changed meanwhile: the page now shows its current status."
        ),
        ErrorCode.NOT_FOUND: _("This record no longer exists; it may have been merged or removed."),
        ErrorCode.DUPLICATE: _("This is already registered."),
        ErrorCode.SCHEDULE_CONFLICT: _("The station is already booked at this time."),
        ErrorCode.OUTSIDE_OPENING_HOURS: _("The station is closed at this time."),
        ErrorCode.INVALID_VALUE: _("A value was refused; check the form."),
        ErrorCode.UNKNOWN_PROCEDURE: _("This procedure is not in the catalogue."),
        ErrorCode.IN_THE_PAST: _("This time is in the past: choose a later time."),
        ErrorCode.NOTHING_TO_UNDO: _("There is nothing of today to undo on this exam."),
    }[code]


def warning_message(warning: BookingWarning) -> str:
    """A booking warning (``scheduling.booking_warnings``) as a sentence in the user's language."""
    facts = {
        "station": warning.station,
        "start": timezone.localtime(warning.start).strftime("%Y-%m-%d %H:%M")
        if warning.start else "",
        "end": timezone.localtime(warning.end).strftime("%H:%M") if warning.end else "",
    }
    if warning.code == "outside_hours":
        return _(
            "%(station)s is closed at %(start)s-%(end)s (outside its opening hours). Book it as "
            "an extra session only if the station will be staffed."
        ) % facts
    if warning.code == "reserved":
        try:
            kind = str(SlotReservation.Kind(warning.kind).label).lower()
        except ValueError:
            kind = warning.kind
        return _(
            "%(start)s-%(end)s on %(station)s is reserved for %(kind)s, and this exam is not one "
            "of them."
        ) % {**facts, "kind": kind}
    return _(
        "The patient already has an exam on %(station)s at %(start)s-%(end)s."
    ) % facts


def domain_message(exc: DomainError) -> str:
    """The refusal in the user's language: the translated sentence with the error's facts.

    An error without facts shows the domain's own English text to an English user (it is more
    precise) and the translated generic sentence to everyone else.
    """
    build = _WITH_PARAMS.get(exc.code)
    if build is not None and exc.params:
        try:
            return build(exc.params)
        except (KeyError, TypeError):
            pass
    if (get_language() or "en").startswith("en"):
        return exc.message
    # A refusal worded like one of ris's notes (an MPPS step conflict: "step X is completed and
    # cannot become started") keeps its facts in translation.
    said = translate_clause(exc.message)
    if said != exc.message:
        return said
    return _generic(exc.code)
