"""The step/order state machine: every allowed transition works, every other one raises."""

import itertools

import pytest

from worklist.errors import InvalidTransition
from worklist.models import OrderStatus, StepStatus
from worklist.states import (
    INCORRECT_WORKLIST_ENTRY,
    STEP_TRANSITIONS,
    check_step_transition,
    derive_order_status,
    status_after_schedule,
)

S = StepStatus
ALLOWED = {
    (S.UNSCHEDULED, S.SCHEDULED),
    (S.UNSCHEDULED, S.CANCELED),
    (S.SCHEDULED, S.SCHEDULED),
    (S.SCHEDULED, S.ARRIVED),
    (S.SCHEDULED, S.READY),
    (S.SCHEDULED, S.STARTED),
    (S.SCHEDULED, S.CANCELED),
    (S.ARRIVED, S.SCHEDULED),
    (S.ARRIVED, S.READY),
    (S.ARRIVED, S.STARTED),
    (S.ARRIVED, S.CANCELED),
    (S.READY, S.SCHEDULED),
    (S.READY, S.ARRIVED),
    (S.READY, S.STARTED),
    (S.READY, S.CANCELED),
    (S.STARTED, S.COMPLETED),
    (S.STARTED, S.DISCONTINUED),
    (S.STARTED, S.SCHEDULED),  # only with reason 110514, see below
}


def test_the_table_is_exactly_the_documented_model():
    table = {(a, b) for a, targets in STEP_TRANSITIONS.items() for b in targets}
    assert table == ALLOWED


@pytest.mark.parametrize("current,target", sorted(ALLOWED - {(S.STARTED, S.SCHEDULED)}))
def test_allowed_transition_passes(current, target):
    check_step_transition(current, target)


@pytest.mark.parametrize(
    "current,target", sorted(set(itertools.product(S, S)) - ALLOWED)
)
def test_other_transition_raises(current, target):
    with pytest.raises(InvalidTransition):
        check_step_transition(current, target)


def test_started_goes_back_to_scheduled_only_for_incorrect_worklist_entry():
    check_step_transition(S.STARTED, S.SCHEDULED, reason_code=INCORRECT_WORKLIST_ENTRY)
    with pytest.raises(InvalidTransition, match="110514"):
        check_step_transition(S.STARTED, S.SCHEDULED)
    with pytest.raises(InvalidTransition):
        check_step_transition(S.STARTED, S.SCHEDULED, reason_code=("110513", "DCM"))


@pytest.mark.parametrize(
    "steps,expected",
    [
        ([S.SCHEDULED], OrderStatus.SCHEDULED),
        ([S.UNSCHEDULED, S.SCHEDULED], OrderStatus.SCHEDULED),
        ([S.ARRIVED, S.READY], OrderStatus.SCHEDULED),
        ([S.STARTED, S.SCHEDULED], OrderStatus.IN_PROGRESS),
        ([S.COMPLETED, S.SCHEDULED], OrderStatus.IN_PROGRESS),
        ([S.COMPLETED, S.COMPLETED], OrderStatus.COMPLETED),
        ([S.COMPLETED, S.CANCELED], OrderStatus.COMPLETED),
        ([S.COMPLETED, S.DISCONTINUED], OrderStatus.COMPLETED),
        ([S.DISCONTINUED], OrderStatus.DISCONTINUED),
        ([S.CANCELED, S.CANCELED], OrderStatus.CANCELED),
    ],
)
def test_order_status_is_derived_from_its_steps(steps, expected):
    assert derive_order_status(steps) == expected


@pytest.mark.parametrize(
    "current,after",
    [
        (S.UNSCHEDULED, S.SCHEDULED),
        (S.SCHEDULED, S.SCHEDULED),
        (S.ARRIVED, S.SCHEDULED),
        (S.READY, S.SCHEDULED),
    ],
)
def test_booking_or_moving_makes_a_step_scheduled_at_its_new_time(current, after):
    assert status_after_schedule(current) == after


@pytest.mark.parametrize("current", [S.STARTED, S.COMPLETED, S.DISCONTINUED, S.CANCELED])
def test_a_started_or_finished_step_cannot_be_moved(current):
    with pytest.raises(InvalidTransition):
        status_after_schedule(current)


# --- groupings: each one follows from the state machine, so the two cannot drift apart ---------


def test_schedulable_steps_are_those_the_machine_lets_become_scheduled_without_a_reason_code():
    from worklist.states import SCHEDULABLE_STEP_STATUSES

    reachable = {s for s, targets in STEP_TRANSITIONS.items() if S.SCHEDULED in targets}
    # STARTED -> SCHEDULED exists only for MPPS "incorrect worklist entry" (110514).
    assert SCHEDULABLE_STEP_STATUSES == reachable - {S.STARTED}


def test_movable_steps_are_the_schedulable_ones_that_already_hold_a_slot():
    from worklist.states import MOVABLE_STEP_STATUSES, SCHEDULABLE_STEP_STATUSES

    assert MOVABLE_STEP_STATUSES == SCHEDULABLE_STEP_STATUSES - {S.UNSCHEDULED}


def test_startable_steps_are_those_the_machine_lets_start():
    from worklist.states import STARTABLE_STEP_STATUSES

    assert STARTABLE_STEP_STATUSES == {
        s for s, targets in STEP_TRANSITIONS.items() if S.STARTED in targets
    }


def test_a_slot_is_occupied_by_every_step_that_is_booked_and_not_finished():
    from worklist.states import FINAL_STEP_STATUSES, SLOT_OCCUPYING_STEP_STATUSES

    assert SLOT_OCCUPYING_STEP_STATUSES == set(S) - FINAL_STEP_STATUSES - {S.UNSCHEDULED}


def test_imaged_steps_are_the_started_and_the_finished_ones_that_were_not_cancelled():
    from worklist.states import IMAGED_STEP_STATUSES

    assert IMAGED_STEP_STATUSES == {S.STARTED, S.COMPLETED, S.DISCONTINUED}


def test_a_study_may_be_linked_to_a_step_that_can_still_start_or_reached_started_or_completed():
    from worklist.states import IMAGE_LINKABLE_STEP_STATUSES

    can_start = {s for s, targets in STEP_TRANSITIONS.items() if S.STARTED in targets}
    reached_by_performing = {S.STARTED} | STEP_TRANSITIONS[S.STARTED]
    performed = reached_by_performing - {S.DISCONTINUED, S.SCHEDULED}
    assert IMAGE_LINKABLE_STEP_STATUSES == can_start | performed
    assert S.CANCELED not in IMAGE_LINKABLE_STEP_STATUSES


def test_closed_orders_are_exactly_the_orders_whose_steps_are_all_final():
    from worklist.states import CLOSED_ORDER_STATUSES, FINAL_STEP_STATUSES

    derived = {derive_order_status([s]) for s in FINAL_STEP_STATUSES}
    assert CLOSED_ORDER_STATUSES == derived


def test_a_scheduled_workitem_is_exactly_a_step_that_may_still_start():
    from worklist.states import (
        FINAL_STEP_STATUSES,
        STARTABLE_STEP_STATUSES,
        UPS_STATE_OF_STEP,
        step_statuses_in_ups_state,
    )

    assert step_statuses_in_ups_state("SCHEDULED") == STARTABLE_STEP_STATUSES
    assert step_statuses_in_ups_state("IN PROGRESS") == {S.STARTED}
    # every status on some worklist is some workitem state; UNSCHEDULED is none
    assert set(UPS_STATE_OF_STEP) == set(StepStatus) - {S.UNSCHEDULED}
    assert step_statuses_in_ups_state("CANCELED") | step_statuses_in_ups_state("COMPLETED") == (
        FINAL_STEP_STATUSES
    )
