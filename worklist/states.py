"""The one state machine of scheduled steps and orders (docs/architecture.md, "Status model").

Every interface (HL7, DICOM MPPS, web, API) moves a step through ``check_step_transition`` by way of
``worklist.services.step_transition``; nothing else writes a status. The order's status is never
set by hand: it is derived from its steps by ``derive_order_status``.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from worklist.errors import InvalidTransition
from worklist.models import OrderStatus, StepProgress, StepStatus

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

# --- Groupings of statuses: the only place they are written (docs/architecture.md, rule 3) ----

#: Steps a modality should see on its worklist by default.
WORKLIST_STATUSES = frozenset({S.SCHEDULED, S.ARRIVED, S.READY})
FINAL_STEP_STATUSES = frozenset({S.COMPLETED, S.DISCONTINUED, S.CANCELED})
#: A step in one of these has been (or is being) performed: an order holding it cannot be cancelled.
PERFORMED_STEP_STATUSES = frozenset({S.STARTED, S.COMPLETED})
#: Steps that hold a slot and may be moved to another one (web "move", API reschedule). Checked-in
#: steps are movable: the move undoes the check-in (``status_after_schedule``).
MOVABLE_STEP_STATUSES = frozenset({S.SCHEDULED, S.ARRIVED, S.READY})
#: Steps that may be given a (new) time: the movable ones and the ones still waiting for a slot.
#: An HL7 order change (XO) with a new time applies to these; a started step is never moved by it.
SCHEDULABLE_STEP_STATUSES = MOVABLE_STEP_STATUSES | {S.UNSCHEDULED}
#: Steps a modality may start (MPPS N-CREATE IN PROGRESS links to these).
STARTABLE_STEP_STATUSES = frozenset({S.SCHEDULED, S.ARRIVED, S.READY})
#: Steps that occupy their station for their slot: two of these may not overlap on a station.
SLOT_OCCUPYING_STEP_STATUSES = frozenset({S.SCHEDULED, S.ARRIVED, S.READY, S.STARTED})
#: Steps whose images are expected somewhere: "not yet at the PACS" until the PACS has them.
IMAGED_STEP_STATUSES = frozenset({S.STARTED, S.COMPLETED, S.DISCONTINUED})
#: Orders that nothing may change any more (no new procedure, no reschedule, no cancel).
CLOSED_ORDER_STATUSES = frozenset(
    {OrderStatus.CANCELED, OrderStatus.DISCONTINUED, OrderStatus.COMPLETED}
)
#: Steps that stay on the Modality Worklist for RIS_MWL_KEEP_FINISHED_MINUTES after their last
#: change (a modality that queries again after the exam still finds its entry); 0: they leave at
#: once, as the MWL default statuses (RIS_MWL_DEFAULT_STATUSES) say.
MWL_LINGERING_STATUSES = frozenset({S.STARTED, S.COMPLETED, S.DISCONTINUED})
#: Steps a study may be linked to by staff (reconciliation): one that may still start, or was
#: performed (more images of it). A cancelled, discontinued or unscheduled exam takes none.
IMAGE_LINKABLE_STEP_STATUSES = STARTABLE_STEP_STATUSES | PERFORMED_STEP_STATUSES
#: Steps that can be overdue: still waiting hours after their scheduled end.
OVERDUE_STATUSES = WORKLIST_STATUSES
#: Steps the first image of their study starts (devices whose steps follow the images).
IMAGE_STARTABLE_STATUSES = WORKLIST_STATUSES
#: Steps the study availability query asks the PACS about although nothing says they were
#: performed: a modality that sends straight to the PACS and no MPPS leaves them waiting.
AVAILABILITY_WAITING_STATUSES = WORKLIST_STATUSES


def progress_mode(device) -> StepProgress:
    """What moves the steps of ``device`` (a ``Device`` or None): its own choice, else the
    department's (``RIS_STEP_PROGRESS_DEFAULT``, MPPS unless set)."""
    chosen = getattr(device, "step_progress", "") or ""
    if not chosen:
        chosen = getattr(settings, "RIS_STEP_PROGRESS_DEFAULT", "") or StepProgress.MPPS
    return StepProgress(chosen)


def images_move_steps(mode: str) -> bool:
    """Images start and complete the steps (with BOTH only while no MPPS has come)."""
    return mode in (StepProgress.IMAGES, StepProgress.BOTH)


def mpps_moves_steps(mode: str) -> bool:
    return mode in (StepProgress.MPPS, StepProgress.BOTH)


#: Steps on the front desk's check-in list: the board's, and cancelled ones (a no-show stays
#: visible, struck through, so that it can be undone).
CHECK_IN_LIST_STATUSES = frozenset(
    {S.SCHEDULED, S.ARRIVED, S.READY, S.STARTED, S.COMPLETED, S.DISCONTINUED, S.CANCELED}
)

#: What undoing a front-desk action may restore: the status a check-in (arrived, ready) or a
#: no-show left the step in -> the statuses it may have come from. Cancelled is final for every
#: other path (docs/architecture.md, "Status model"); only a no-show's cancel is reversible,
#: and only by ``step_undo``.
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

    A reschedule undoes a check-in (docs/architecture.md, "Status model": SCHEDULED, ARRIVED, READY
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


#: Procedure Step State (0074,1000) of a step offered as a UPS workitem (PS3.4 CC.1.1): the
#: steps a modality may still start are SCHEDULED, a started one is IN PROGRESS, a discontinued
#: or cancelled one CANCELED. UNSCHEDULED steps are no workitem (they are on no worklist).
UPS_STATE_OF_STEP: dict[str, str] = {
    S.SCHEDULED: "SCHEDULED",
    S.ARRIVED: "SCHEDULED",
    S.READY: "SCHEDULED",
    S.STARTED: "IN PROGRESS",
    S.COMPLETED: "COMPLETED",
    S.DISCONTINUED: "CANCELED",
    S.CANCELED: "CANCELED",
}


def step_statuses_in_ups_state(state: str) -> frozenset[str]:
    """The step statuses a UPS Procedure Step State stands for (empty for an unknown one)."""
    return frozenset(s for s, ups in UPS_STATE_OF_STEP.items() if ups == state)
