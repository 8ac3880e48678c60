"""The one state machine of scheduled steps and orders (``shared/reference/status-model.md``).

Every interface (HL7, DICOM MPPS, web, API) moves a step through ``check_step_transition`` by way of
``worklist.services.step_transition``; nothing else writes a status. The order's status is never
set by hand: it is derived from its steps by ``derive_order_status``.
"""

from __future__ import annotations

from collections.abc import Iterable

from worklist.errors import InvalidTransition
from worklist.models import OrderStatus, StepStatus

S = StepStatus

#: DICOM DCM code "Incorrect worklist entry selected" (IHE RAD-7): the modality picked the wrong
#: step, so a STARTED step goes back to SCHEDULED instead of DISCONTINUED.
INCORRECT_WORKLIST_ENTRY = ("110514", "DCM")

STEP_TRANSITIONS: dict[str, frozenset[str]] = {
    S.UNSCHEDULED: frozenset({S.SCHEDULED, S.CANCELED}),
    # SCHEDULED -> SCHEDULED is a reschedule (new time or station).
    S.SCHEDULED: frozenset({S.SCHEDULED, S.ARRIVED, S.READY, S.STARTED, S.CANCELED}),
    S.ARRIVED: frozenset({S.SCHEDULED, S.READY, S.STARTED, S.CANCELED}),
    S.READY: frozenset({S.SCHEDULED, S.ARRIVED, S.STARTED, S.CANCELED}),
    S.STARTED: frozenset({S.COMPLETED, S.DISCONTINUED, S.SCHEDULED}),
    S.COMPLETED: frozenset(),
    S.DISCONTINUED: frozenset(),
    S.CANCELED: frozenset(),
}

#: Steps a modality should see on its worklist by default.
WORKLIST_STATUSES = frozenset({S.SCHEDULED, S.ARRIVED, S.READY})
FINAL_STEP_STATUSES = frozenset({S.COMPLETED, S.DISCONTINUED, S.CANCELED})
#: A step in one of these has been (or is being) performed: an order holding it cannot be cancelled.
PERFORMED_STEP_STATUSES = frozenset({S.STARTED, S.COMPLETED})


#: Steps on the front desk's check-in list: the board's, and cancelled ones (a no-show stays
#: visible, struck through, so that it can be undone).
CHECK_IN_LIST_STATUSES = frozenset(
    {S.SCHEDULED, S.ARRIVED, S.READY, S.STARTED, S.COMPLETED, S.DISCONTINUED, S.CANCELED}
)

#: What undoing a front-desk action may restore: the status a check-in (arrived, ready) or a
#: no-show left the step in -> the statuses it may have come from. Cancelled is final for every
#: other path (status-model.md); only a no-show's cancel is reversible, and only by ``step_undo``.
UNDO_TRANSITIONS: dict[str, frozenset[str]] = {
    S.ARRIVED: frozenset({S.SCHEDULED, S.READY}),
    S.READY: frozenset({S.SCHEDULED, S.ARRIVED}),
    S.CANCELED: frozenset({S.SCHEDULED, S.ARRIVED, S.READY}),
}


def check_undo_transition(current: str, previous: str) -> None:
    """Raise ``InvalidTransition`` unless undoing may take a step from ``current`` back to
    ``previous``."""
    current, previous = StepStatus(current), StepStatus(previous)
    if previous not in UNDO_TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(
            f"a step that is {current.label.lower()} cannot go back to {previous.label.lower()}",
            params={"current": str(current), "target": str(previous)},
        )


def allowed_step_transitions(current: str) -> frozenset[str]:
    return STEP_TRANSITIONS[StepStatus(current)]


def check_step_transition(
    current: str, target: str, *, reason_code: tuple[str, str] | None = None
) -> None:
    """Raise ``InvalidTransition`` unless a step may move from ``current`` to ``target``."""
    current, target = StepStatus(current), StepStatus(target)
    if target not in STEP_TRANSITIONS[current]:
        raise InvalidTransition(
            f"a step that is {current.label.lower()} cannot become {target.label.lower()}",
            params={"current": str(current), "target": str(target)},
        )
    if current == S.STARTED and target == S.SCHEDULED and reason_code != INCORRECT_WORKLIST_ENTRY:
        raise InvalidTransition(
            "a started step goes back to scheduled only when the modality discontinued it with "
            "reason 110514 (DCM, incorrect worklist entry selected)"
        )


def status_after_schedule(current: str) -> StepStatus:
    """The status of a step once it is booked into a slot or moved to another one: SCHEDULED.

    A reschedule undoes a check-in (shared/reference/status-model.md: SCHEDULED, ARRIVED, READY
    -> SCHEDULED at the new time): the patient is checked in again for the new slot. Raises
    ``InvalidTransition`` for a step that cannot be (re)scheduled: started or finished.
    """
    check_step_transition(StepStatus(current), S.SCHEDULED)
    return S.SCHEDULED


def derive_order_status(step_statuses: Iterable[str]) -> OrderStatus:
    """The order status (ORC-5) that its steps imply.

    Canceled steps do not count unless all are canceled. Any step under way makes the order in
    progress; all steps done makes it completed (or discontinued when none was completed).
    """
    live = [StepStatus(s) for s in step_statuses if s != S.CANCELED]
    if not live:
        return OrderStatus.CANCELED
    if any(s == S.STARTED for s in live):
        return OrderStatus.IN_PROGRESS
    finished = [s for s in live if s in (S.COMPLETED, S.DISCONTINUED)]
    if len(finished) == len(live):
        if any(s == S.COMPLETED for s in live):
            return OrderStatus.COMPLETED
        return OrderStatus.DISCONTINUED
    if finished:
        return OrderStatus.IN_PROGRESS
    return OrderStatus.SCHEDULED
