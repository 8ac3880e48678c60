"""Writes of the worklist domain: every interface (HL7, DICOM, web, API) changes data through here.

Each function is one transaction that validates, saves, writes the audit trail and emits the
domain signal that queues outbound messages. Functions take keyword-only arguments and an
``Actor`` so the trail always says who did it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from worklist import audit, identifiers, signals
from worklist.audit import Actor
from worklist.errors import DomainError, Duplicate, ErrorCode, InvalidTransition, ScheduleConflict
from worklist.models import (
    Device,
    Order,
    OrderStatus,
    Patient,
    Priority,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatus,
    Visit,
)
from worklist.pn import PersonName
from worklist.states import (
    CLOSED_ORDER_STATUSES,
    FINAL_STEP_STATUSES,
    PERFORMED_STEP_STATUSES,
    SLOT_OCCUPYING_STEP_STATUSES,
    STARTABLE_STEP_STATUSES,
    allowed_step_transitions,
    check_step_transition,
    derive_order_status,
    status_after_schedule,
)

#: Steps that occupy their station's time slot.

#: Patient demographics a caller may set or change, besides the name (PN groups); the REST API's
#: patient serializers list the same, in this order.
DEMOGRAPHICS = (
    "birth_date",
    "sex",
    "weight_kg",
    "size_m",
    "medical_alerts",
    "allergies",
    "pregnancy_status",
    "patient_state",
    "special_needs",
    "confidentiality",
    "additional_history",
    "other_ids",
)
PATIENT_FIELDS = frozenset(DEMOGRAPHICS)


# --- patients ---------------------------------------------------------------------------------


@transaction.atomic
def patient_upsert(
    *, patient_id: str, issuer: str = "", name: PersonName | str, actor: Actor, **demographics
) -> tuple[Patient, bool]:
    """Register a patient, or update the demographics of the one with this ID and issuer."""
    unknown = set(demographics) - PATIENT_FIELDS
    if unknown:
        raise TypeError(f"unknown patient fields: {sorted(unknown)}")
    if not patient_id:
        raise DomainError("a patient needs a patient ID", code=ErrorCode.INVALID_VALUE)
    try:
        existing = Patient.objects.select_for_update().get(patient_id=patient_id, issuer=issuer)
    except Patient.DoesNotExist:  # (patient ID, issuer) is unique: get() needs no ORDER BY
        existing = None
    if existing is None:
        new = Patient(patient_id=patient_id, issuer=issuer, **demographics)
        new.set_person_name(name)
        new.save()
        audit.record(actor, "patient.create", new, after=audit.snapshot(new))
        return new, True
    return patient_update(patient=existing, actor=actor, name=name, **demographics), False


def patient_update(
    *, patient: Patient, actor: Actor, name: PersonName | str | None = None, **changes
) -> Patient:
    unknown = set(changes) - PATIENT_FIELDS
    if unknown:
        raise TypeError(f"unknown patient fields: {sorted(unknown)}")
    before = audit.snapshot(patient)
    if name is not None:
        patient.set_person_name(name)
    for key, value in changes.items():
        setattr(patient, key, value)
    after = audit.snapshot(patient)
    if after != before:
        # Only a real change opens a transaction: most HL7 orders repeat the demographics ris
        # already has, and cost no statement here then.
        with transaction.atomic():
            patient.save()
            audit.record(actor, "patient.update", patient, before=before, after=after)
            signals.patient_updated.send(Patient, patient=patient, actor=actor)
    return patient


# --- orders -----------------------------------------------------------------------------------


@dataclass
class ProcedureRequest:
    """One requested procedure of a new order, with its (optional) first schedule."""

    procedure_type: ProcedureType
    scheduled_start: dt.datetime | None = None
    station: Device | None = None
    priority: str = ""
    description: str = ""
    performing_physician: str = ""
    extra: dict = field(default_factory=dict)
    #: Without ``station``, a timed step goes to the procedure type's first active station.
    #: False when the caller already looked that up (the HL7 catalogue cache) and found none.
    pick_station: bool = True


@transaction.atomic
def order_create(
    *,
    patient: Patient,
    procedures: Sequence[ProcedureRequest],
    actor: Actor,
    source: str = Order.Source.MANUAL,
    placer_order_number: str = "",
    placer_issuer: str = "",
    filler_order_number: str = "",
    visit: Visit | None = None,
    priority: str = Priority.ROUTINE,
    requesting_physician: str = "",
    referring_physician: str = "",
    requesting_service: str = "",
    reason: str = "",
    comments: str = "",
) -> Order:
    """Create an order with one requested procedure and one scheduled step per procedure.

    ris assigns the accession number, requested procedure IDs, SPS IDs and Study Instance UIDs.
    A procedure with a start time becomes SCHEDULED; without one it waits UNSCHEDULED for the
    front desk and stays off the worklist.
    """
    if not procedures:
        raise DomainError("an order needs at least one requested procedure")
    ids = identifiers.for_order(len(procedures))
    # A step with a start time is SCHEDULED, one without UNSCHEDULED (or placing it fails and
    # nothing is kept): the order's status is known before its steps are written.
    status = derive_order_status(
        StepStatus.SCHEDULED if r.scheduled_start is not None else StepStatus.UNSCHEDULED
        for r in procedures
    )
    try:
        with transaction.atomic():
            order = Order.objects.create(
                patient=patient,
                visit=visit,
                placer_order_number=placer_order_number,
                placer_issuer=placer_issuer,
                filler_order_number=filler_order_number or ids.accession_number,
                accession_number=ids.accession_number,
                requesting_physician=requesting_physician,
                referring_physician=referring_physician,
                requesting_service=requesting_service,
                reason=reason,
                priority=priority,
                comments=comments,
                source=source,
                status=status,
            )
    except IntegrityError as exc:
        # The unique placer constraint is the duplicate check (no SELECT before the INSERT).
        if placer_order_number and Order.objects.filter(
            placer_order_number=placer_order_number, placer_issuer=placer_issuer
        ).exists():
            raise Duplicate(
                f"placer order number {placer_order_number!r} of "
                f"{placer_issuer or 'no issuer'!r} already exists"
            ) from exc
        raise Duplicate(f"the order could not be stored: {exc}") from exc
    built: list[tuple[RequestedProcedure, ScheduledProcedureStep]] = []
    for index, request in enumerate(procedures):
        built.append(
            _build_procedure(order, request, ids, index, planned=[step for _, step in built])
        )
    _insert_procedures(built)
    audit.record_all(
        [audit.event(actor, "step.create", step, after=audit.snapshot(step)) for _, step in built]
        + [audit.event(actor, "order.create", order, after=audit.snapshot(order))]
    )
    return order


def _build_procedure(
    order: Order,
    request: ProcedureRequest,
    ids: identifiers.OrderIdentifiers,
    index: int,
    *,
    planned: Sequence[ScheduledProcedureStep],
) -> tuple[RequestedProcedure, ScheduledProcedureStep]:
    """The requested procedure and its step, placed but not saved (``_insert_procedures``)."""
    ptype = request.procedure_type
    procedure_fields, step_fields = _from_catalogue(ptype, request.description)
    procedure = RequestedProcedure(
        order=order,
        requested_procedure_id=ids.requested_procedure_ids[index],
        study_instance_uid=ids.study_instance_uids[index],
        **procedure_fields,
        priority=request.priority or order.priority,
        **{k: v for k, v in request.extra.items() if k == "transport_arrangements"},
    )
    station = request.station
    if station is None and request.scheduled_start is not None and request.pick_station:
        station = ptype.stations.filter(active=True).first()
    step = ScheduledProcedureStep(
        requested_procedure=procedure,
        sps_id=ids.sps_ids[index],
        station=station,
        performing_physician=request.performing_physician,
        location=(station.location if station else "")[:16],
        status=StepStatus.UNSCHEDULED,
        **step_fields,
    )
    if request.scheduled_start is not None:
        _place(step, request.scheduled_start, station, planned=planned)
        step.status = StepStatus.SCHEDULED
    return procedure, step


def _from_catalogue(ptype: ProcedureType, description: str = "") -> tuple[dict, dict]:
    """What a procedure type gives its requested procedure and its steps: the one mapping for
    creating an exam and for changing one into another (``procedure_change``)."""
    text = (description or ptype.description or ptype.code_meaning)[:64]
    procedure = {
        "procedure_type": ptype,
        "description": text,
        "code_value": ptype.code_value,
        "code_scheme": ptype.code_scheme,
        "code_meaning": ptype.code_meaning,
    }
    step = {
        "modality": ptype.modality,
        "expected_duration_minutes": ptype.default_duration_minutes,
        "description": text,
        "protocol_codes": list(ptype.protocol_codes),
    }
    return procedure, step


def _insert_procedures(built: list[tuple[RequestedProcedure, ScheduledProcedureStep]]) -> None:
    """Two INSERTs for all procedures and steps of an order, however many OBRs it had."""
    procedures = [procedure for procedure, _ in built]
    steps = [step for _, step in built]
    if len(built) == 1 or not connection.features.can_return_rows_from_bulk_insert:
        for procedure, step in built:
            procedure.save(force_insert=True)
            step.requested_procedure = procedure
            step.save(force_insert=True)
        return
    RequestedProcedure.objects.bulk_create(procedures)
    for procedure, step in built:
        step.requested_procedure = procedure  # now with its primary key
    ScheduledProcedureStep.objects.bulk_create(steps)


#: Order fields a person may correct after the order exists. The procedure is changed by
#: ``procedure_change``, and only before any image exists, so the Study UID stays truthful.
ORDER_EDITABLE_FIELDS = {
    "priority",
    "requesting_physician",
    "referring_physician",
    "requesting_service",
    "reason",
    "comments",
}


@transaction.atomic
def order_update(*, order: Order, actor: Actor, **changes) -> Order:
    """Correct an order's request details; refused once the order is finished or cancelled."""
    unknown = set(changes) - ORDER_EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"unknown order fields: {sorted(unknown)}")
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status in CLOSED_ORDER_STATUSES:
        raise InvalidTransition(
            f"order {order.accession_number} is {order.get_status_display().lower()}: "
            "it can no longer be changed"
        )
    if "priority" in changes and changes["priority"] not in Priority.values:
        raise DomainError(f"unknown priority {changes['priority']!r}")
    before = audit.snapshot(order)
    for key, value in changes.items():
        setattr(order, key, value)
    after = audit.snapshot(order)
    if after != before:
        order.save()
        audit.record(actor, "order.update", order, before=before, after=after)
        if "priority" in changes:
            _apply_priority(order, actor=actor)
        signals.order_updated.send(Order, order=order, actor=actor)
    return order


def _apply_priority(order: Order, *, actor: Actor) -> None:
    """The order's new priority becomes each requested procedure's: modalities read Requested
    Procedure Priority (0040,1003), not the order's."""
    events = []
    for procedure in order.procedures.select_for_update().exclude(priority=order.priority):
        before = audit.snapshot(procedure)
        procedure.priority = order.priority
        procedure.save(update_fields=["priority"])
        events.append(
            audit.event(
                actor, "procedure.update", procedure, before=before, after=audit.snapshot(procedure)
            )
        )
    audit.record_all(events)


#: Steps whose procedure may still change: nothing acquired yet. A discontinued step was started,
#: so images of the old procedure may exist under the Study UID.
_CHANGEABLE_STEPS = (
    StepStatus.UNSCHEDULED,
    StepStatus.SCHEDULED,
    StepStatus.ARRIVED,
    StepStatus.READY,
    StepStatus.CANCELED,
)


@transaction.atomic
def procedure_change(
    *, procedure: RequestedProcedure, procedure_type: ProcedureType, actor: Actor
) -> RequestedProcedure:
    """Make a requested procedure a different exam (HL7 XO with a new OBR-4, the web, the API).

    The procedure keeps its IDs and Study UID; code, description and procedure type change, and so
    do its steps not yet performed (description, protocol, modality, expected duration), on the
    same station and at the same time. Refused, with nothing changed, once a step started (images
    of the old exam exist), when the order is finished, when the step's station is of another
    modality, or when the longer exam would overlap the next one on the station.
    """
    procedure = RequestedProcedure.objects.select_for_update().get(pk=procedure.pk)
    if procedure.procedure_type_id == procedure_type.pk or (
        procedure.procedure_type_id is None  # taken over from a worklist file: only its code
        and (procedure.code_value, procedure.code_scheme)
        == (procedure_type.code_value, procedure_type.code_scheme)
    ):
        return procedure  # the same exam again (an XO repeats OBR-4): nothing to change
    order = Order.objects.select_for_update().get(pk=procedure.order_id)
    if order.status in CLOSED_ORDER_STATUSES:
        raise InvalidTransition(
            f"order {order.accession_number} is {order.get_status_display().lower()}: "
            "its procedure can no longer be changed"
        )
    steps = list(
        ScheduledProcedureStep.objects.select_for_update()
        .filter(requested_procedure=procedure)
        .order_by("pk")
    )
    performed = [s.sps_id for s in steps if s.status not in _CHANGEABLE_STEPS]
    if performed:
        raise InvalidTransition(
            f"requested procedure {procedure.requested_procedure_id} of order "
            f"{order.accession_number} cannot become {procedure_type.code_value} "
            f"({procedure_type.code_meaning}): step(s) {', '.join(performed)} already started, "
            "completed or discontinued"
        )
    procedure_fields, step_fields = _from_catalogue(procedure_type)
    events = []
    for step in steps:
        if step.status == StepStatus.CANCELED:
            continue
        station = step.station
        if station is not None and station.modality and station.modality != procedure_type.modality:
            raise InvalidTransition(
                f"step {step.sps_id} is booked on {station.ae_title} ({station.modality}), which "
                f"cannot perform {procedure_type.code_value} ({procedure_type.modality}): "
                "move or cancel the step first"
            )
        before = audit.snapshot(step)
        longer = procedure_type.default_duration_minutes > step.expected_duration_minutes
        for name, value in step_fields.items():
            setattr(step, name, list(value) if isinstance(value, list) else value)  # own list
        if step.scheduled_start is not None:
            if longer:
                # The longer exam must not run into the next one on the station (nor past closing).
                _place(step, step.scheduled_start, station)
            else:
                step.scheduled_end = step.scheduled_start + dt.timedelta(
                    minutes=step.expected_duration_minutes
                )
        step.save()
        events.append(
            audit.event(actor, "step.update", step, before=before, after=audit.snapshot(step))
        )
    before = audit.snapshot(procedure)
    for name, value in procedure_fields.items():
        setattr(procedure, name, value)
    procedure.save()
    events.append(
        audit.event(
            actor, "procedure.change", procedure, before=before, after=audit.snapshot(procedure)
        )
    )
    audit.record_all(events)
    signals.order_updated.send(Order, order=order, actor=actor)
    return procedure


@transaction.atomic
def order_cancel(
    *, order: Order, actor: Actor, reason: str = "", discontinue: bool = False
) -> Order:
    """Cancel (or discontinue) every step of an order that has not been performed.

    Refused when a step already STARTED or COMPLETED: the modality has acquired images, so the
    exam must be completed or discontinued at the modality, not erased by the HIS.
    """
    steps = list(
        ScheduledProcedureStep.objects.select_for_update()
        .filter(requested_procedure__order=order)
        .order_by("pk")
    )
    performed = [s.sps_id for s in steps if s.status in PERFORMED_STEP_STATUSES]
    if performed:
        raise InvalidTransition(
            f"order {order.accession_number} cannot be cancelled: step(s) {', '.join(performed)} "
            "already started or completed"
        )
    for step in steps:
        if StepStatus.CANCELED in allowed_step_transitions(step.status):
            _apply_transition(step, StepStatus.CANCELED, actor=actor, reason=reason)
    return _refresh_order_status(order, actor=actor, reason=reason, discontinued=discontinue)


# --- steps ------------------------------------------------------------------------------------


@transaction.atomic
def step_schedule(
    *,
    step: ScheduledProcedureStep,
    start: dt.datetime,
    actor: Actor,
    station: Device | None = None,
    duration_minutes: int | None = None,
) -> ScheduledProcedureStep:
    """Book an unscheduled step into a slot, or move a scheduled one (new time and/or station)."""
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    # A move undoes a check-in (status-model.md); SCHEDULED -> SCHEDULED is no status change.
    status = status_after_schedule(step.status)
    before = audit.snapshot(step)
    previous = step.status
    if duration_minutes is not None:
        if duration_minutes <= 0:
            raise DomainError("the expected duration must be at least one minute")
        step.expected_duration_minutes = duration_minutes
    _place(step, start, station or step.station)
    step.status = status
    step.save()
    action = "step.book" if previous == StepStatus.UNSCHEDULED else "step.reschedule"
    audit.record(actor, action, step, before=before, after=audit.snapshot(step))
    signals.step_rescheduled.send(ScheduledProcedureStep, step=step, actor=actor)
    if previous != status:
        signals.step_status_changed.send(
            ScheduledProcedureStep, step=step, previous=previous, actor=actor, reason=""
        )
    _refresh_order_status(step.requested_procedure.order, actor=actor)
    return step


@transaction.atomic
def step_transition(
    *,
    step: ScheduledProcedureStep,
    to: str,
    actor: Actor,
    reason: str = "",
    reason_code: tuple[str, str] | None = None,
) -> ScheduledProcedureStep:
    """Move a step to a new status (check-in, start, complete, discontinue, cancel)."""
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    _apply_transition(step, to, actor=actor, reason=reason, reason_code=reason_code)
    _refresh_order_status(step.requested_procedure.order, actor=actor, reason=reason)
    return step


def _apply_transition(
    step: ScheduledProcedureStep,
    to: str,
    *,
    actor: Actor,
    reason: str = "",
    reason_code: tuple[str, str] | None = None,
) -> None:
    to = StepStatus(to)
    check_step_transition(step.status, to, reason_code=reason_code)
    if to == StepStatus.SCHEDULED and step.scheduled_start is None:
        raise InvalidTransition("a step without a start time cannot be scheduled: book it first")
    before = audit.snapshot(step)
    previous = step.status
    step.status = to
    step.status_reason = reason[:200]
    step.save(update_fields=["status", "status_reason", "updated_at"])
    audit.record(
        actor, f"step.{to.lower()}", step, before=before, after=audit.snapshot(step), detail=reason
    )
    signals.step_status_changed.send(
        ScheduledProcedureStep, step=step, previous=previous, actor=actor, reason=reason
    )


def _place(
    step: ScheduledProcedureStep,
    start: dt.datetime,
    station: Device | None,
    *,
    planned: Sequence[ScheduledProcedureStep] = (),
) -> None:
    """Set time and station after checking opening hours and overlaps on that station.

    ``planned``: steps placed earlier in the same call but not saved yet (the other procedures of
    a new order), which occupy their slots as much as the stored ones.
    """
    if timezone.is_naive(start):
        raise DomainError("a scheduled start needs a time zone")
    end = start + dt.timedelta(minutes=step.expected_duration_minutes)
    if station is not None:
        _check_opening_hours(station, start, end)
        if not station.allow_overbooking:
            clash = (
                ScheduledProcedureStep.objects.filter(
                    station=station,
                    status__in=SLOT_OCCUPYING_STEP_STATUSES,
                    scheduled_start__lt=end,
                    scheduled_end__gt=start,
                )
                .exclude(pk=step.pk)
                .order_by("scheduled_start")
                .first()
            )
            clashes = [clash] if clash is not None else []
            clashes += [
                other
                for other in planned
                if other.station_id == station.pk
                and other.status in SLOT_OCCUPYING_STEP_STATUSES
                and other.scheduled_start < end
                and other.scheduled_end > start
            ]
            if clashes:
                clash = min(clashes, key=lambda other: other.scheduled_start)
                local = timezone.localtime(clash.scheduled_start)
                raise ScheduleConflict(
                    f"{station.ae_title} is booked from {local:%Y-%m-%d %H:%M} for "
                    f"{clash.expected_duration_minutes} min (step {clash.sps_id})"
                )
        step.station = station
        if station.location:
            step.location = station.location[:16]
    step.scheduled_start = start
    step.scheduled_end = end


def _check_opening_hours(station: Device, start: dt.datetime, end: dt.datetime) -> None:
    if station.opens_at is None or station.closes_at is None:
        return
    local_start, local_end = timezone.localtime(start), timezone.localtime(end)
    if (
        local_start.date() != local_end.date() and local_end.time() != dt.time(0)
    ) or local_start.time() < station.opens_at or (
        local_end.time() > station.closes_at and local_end.time() != dt.time(0)
    ):
        raise DomainError(
            f"{station.ae_title} is open {station.opens_at:%H:%M}-{station.closes_at:%H:%M}",
            code=ErrorCode.OUTSIDE_OPENING_HOURS,
        )


def _refresh_order_status(
    order: Order, *, actor: Actor, reason: str = "", discontinued: bool = False
) -> Order:
    order = Order.objects.select_for_update().get(pk=order.pk)
    statuses = ScheduledProcedureStep.objects.filter(requested_procedure__order=order)
    new = derive_order_status(statuses.values_list("status", flat=True))
    if discontinued and new == OrderStatus.CANCELED:
        # HL7 DC: the placer stopped the order; the steps leave the worklist like a cancel, but
        # the order reports DC to the HIS.
        new = OrderStatus.DISCONTINUED
    if new == order.status:
        return order
    before = audit.snapshot(order)
    previous = order.status
    order.status = new
    order.status_reason = reason[:200]
    order.save(update_fields=["status", "status_reason", "updated_at"])
    audit.record(actor, "order.status", order, before=before, after=audit.snapshot(order))
    signals.order_status_changed.send(
        Order, order=order, previous=previous, actor=actor, reason=reason
    )
    return order


# --- visits and patient merge (HL7 ADT) -------------------------------------------------------

VISIT_FIELDS = {
    "patient_class",
    "assigned_location",
    "referring_physician",
    "admitted_at",
    "discharged_at",
}


@transaction.atomic
def visit_upsert(*, patient: Patient, admission_id: str, actor: Actor, **fields) -> Visit:
    """Register or update the patient's visit with this admission ID (PV1-19).

    Without an admission ID the patient's latest visit is updated, or one is created: many HIS
    feeds carry outpatient visits without a visit number.
    """
    unknown = set(fields) - VISIT_FIELDS
    if unknown:
        raise TypeError(f"unknown visit fields: {sorted(unknown)}")
    visits = Visit.objects.select_for_update()
    if admission_id:
        # get() first: one visit per admission ID is the rule, and an unordered query is much
        # cheaper to build (every HL7 order goes through here). Duplicates (a merge moved
        # another patient's visit here) fall back to the oldest, as before.
        try:
            visit = visits.get(patient=patient, admission_id=admission_id)
        except Visit.DoesNotExist:
            visit = None
        except Visit.MultipleObjectsReturned:
            visit = visits.filter(patient=patient, admission_id=admission_id).order_by("pk")[0]
    else:
        visit = visits.filter(patient=patient).order_by("-created_at", "-pk").first()
    if visit is None:
        visit = Visit.objects.create(patient=patient, admission_id=admission_id, **fields)
        audit.record(actor, "visit.create", visit, after=audit.snapshot(visit))
        return visit
    before = audit.snapshot(visit)
    for key, value in fields.items():
        setattr(visit, key, value)
    after = audit.snapshot(visit)
    if after != before:
        visit.save()
        audit.record(actor, "visit.update", visit, before=before, after=after)
    return visit


@transaction.atomic
def patient_merge(*, source: Patient, target: Patient, actor: Actor) -> Patient:
    """Merge ``source`` into ``target`` (HL7 A40): the surviving patient gets every order and visit.

    The source row stays (``merged_into`` set) so the audit trail and old messages still resolve;
    its worklist items now show the surviving patient's demographics.
    """
    if source.pk == target.pk:
        raise DomainError("a patient cannot be merged into itself")
    source = Patient.objects.select_for_update().get(pk=source.pk)
    moved_orders = list(Order.objects.filter(patient=source).values_list("pk", flat=True))
    Order.objects.filter(pk__in=moved_orders).update(patient=target)
    Visit.objects.filter(patient=source).update(patient=target)
    Patient.objects.filter(merged_into=source).update(merged_into=target)
    before = audit.snapshot(source)
    source.merged_into = target
    source.save(update_fields=["merged_into", "updated_at"])
    audit.record(
        actor,
        "patient.merge",
        source,
        before=before,
        after=audit.snapshot(source),
        detail=f"merged into {target.patient_id} ({target.issuer}); orders {moved_orders}",
    )
    signals.patient_updated.send(Patient, patient=target, actor=actor)
    return target


# --- worklist files (ris import-worklist) -----------------------------------------------------


@dataclass
class ImportedStep:
    """One scheduled step read from a worklist file, with the identifiers it already carries.

    Empty identifiers are assigned by ris. ``order``, ``procedure`` and ``step`` hold model field
    values of Order, RequestedProcedure and ScheduledProcedureStep.
    """

    accession_number: str
    requested_procedure_id: str
    sps_id: str
    study_instance_uid: str
    scheduled_start: dt.datetime
    scheduled_end: dt.datetime | None
    station: Device | None
    status: str = StepStatus.SCHEDULED
    order: dict = field(default_factory=dict)
    procedure: dict = field(default_factory=dict)
    step: dict = field(default_factory=dict)


@transaction.atomic
def order_import(
    *, patient: Patient, entry: ImportedStep, actor: Actor, visit: Visit | None = None
) -> tuple[ScheduledProcedureStep, bool]:
    """Take over a step of an existing worklist (a DCMTK/Orthanc ``.wl`` file) as it is.

    Unlike ``order_create`` it keeps the file's accession number, IDs, UID, station and time
    (no overlap or opening-hours check: the schedule already happened elsewhere), so modalities
    see the same entries after the migration. Idempotent: a step whose SPS ID (or, without one,
    requested procedure) is already there is returned unchanged with ``created=False``.
    """
    if entry.status == StepStatus.UNSCHEDULED or entry.status not in StepStatus.values:
        raise DomainError(f"{entry.status!r} is not a scheduled procedure step status")
    if timezone.is_naive(entry.scheduled_start):
        raise DomainError("a scheduled start needs a time zone")
    order = None
    if entry.accession_number:
        order = Order.objects.filter(accession_number=entry.accession_number).first()
        if order is not None and order.patient_id != patient.pk:
            raise Duplicate(
                f"accession number {entry.accession_number} belongs to another patient"
            )
    procedure = None
    if entry.requested_procedure_id:
        procedure = RequestedProcedure.objects.filter(
            requested_procedure_id=entry.requested_procedure_id
        ).first()
    elif entry.study_instance_uid:
        procedure = RequestedProcedure.objects.filter(
            study_instance_uid=entry.study_instance_uid
        ).first()
    if procedure is not None and order is not None and procedure.order_id != order.pk:
        raise Duplicate(
            f"requested procedure {procedure.requested_procedure_id} belongs to another order"
        )
    if entry.sps_id:
        existing = ScheduledProcedureStep.objects.filter(sps_id=entry.sps_id).first()
        if existing is not None:
            if procedure is not None and existing.requested_procedure_id != procedure.pk:
                raise Duplicate(f"SPS ID {entry.sps_id} belongs to another requested procedure")
            return existing, False
    elif procedure is not None:
        existing = procedure.steps.order_by("pk").first()
        if existing is not None:
            return existing, False
    if order is None:
        order = Order.objects.create(
            patient=patient,
            visit=visit,
            accession_number=entry.accession_number or identifiers.new_accession_number(),
            source=Order.Source.IMPORT,
            **entry.order,
        )
        if not order.filler_order_number:
            order.filler_order_number = order.accession_number
            order.save(update_fields=["filler_order_number"])
        audit.record(actor, "order.create", order, after=audit.snapshot(order))
    if procedure is None:
        procedure = RequestedProcedure.objects.create(
            order=order,
            requested_procedure_id=entry.requested_procedure_id
            or identifiers.new_requested_procedure_id(),
            study_instance_uid=entry.study_instance_uid or identifiers.new_study_instance_uid(),
            **entry.procedure,
        )
    duration = entry.step.pop("expected_duration_minutes", None) or 15
    end = entry.scheduled_end or entry.scheduled_start + dt.timedelta(minutes=duration)
    step = ScheduledProcedureStep.objects.create(
        requested_procedure=procedure,
        sps_id=entry.sps_id or identifiers.new_sps_id(),
        station=entry.station,
        scheduled_start=entry.scheduled_start,
        scheduled_end=end,
        expected_duration_minutes=max(1, int((end - entry.scheduled_start).total_seconds() // 60)),
        status=entry.status,
        **entry.step,
    )
    audit.record(actor, "step.import", step, after=audit.snapshot(step))
    new_status = derive_order_status(
        ScheduledProcedureStep.objects.filter(requested_procedure__order=order).values_list(
            "status", flat=True
        )
    )
    if new_status != order.status:
        order.status = new_status
        order.save(update_fields=["status", "updated_at"])
    return step, True


# --- steps as UPS workitems (PS3.4 Annex CC) --------------------------------------------------


class UpsRefused(InvalidTransition):
    """A UPS state change the workitem's state or Transaction UID does not allow; ``status`` is
    the UPS failure status of PS3.4 Table CC.2.1-2 (C300H-C312H) that names why."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


#: PS3.4 Table CC.2.1-2: the failures of a UPS state change that ris gives.
UPS_NO_LONGER_UPDATABLE = 0xC300
UPS_WRONG_TRANSACTION_UID = 0xC301
UPS_ALREADY_IN_PROGRESS = 0xC302
UPS_NOT_IN_PROGRESS = 0xC310
UPS_ALREADY_COMPLETED = 0xC311


@transaction.atomic
def step_claim(
    *, step: ScheduledProcedureStep, transaction_uid: str, actor: Actor
) -> ScheduledProcedureStep:
    """A UPS performer claims a step (UPS state IN PROGRESS): the step is STARTED.

    The claim is a conditional UPDATE of a step that may still start, so of concurrent claimers
    exactly one wins (the row lock, or SQLite's write lock, orders them; the later one finds the
    step started); the others get C302H. The status then moves through the one state machine.
    """
    if not transaction_uid:
        raise DomainError("a Transaction UID is required to claim a workitem")
    claimed = ScheduledProcedureStep.objects.filter(
        pk=step.pk, status__in=STARTABLE_STEP_STATUSES
    ).update(ups_transaction_uid=transaction_uid[:64])
    if claimed != 1:
        current = ScheduledProcedureStep.objects.get(pk=step.pk)
        if current.status == StepStatus.STARTED:
            raise UpsRefused(
                f"step {current.sps_id} is already IN PROGRESS", status=UPS_ALREADY_IN_PROGRESS
            )
        raise UpsRefused(
            f"step {current.sps_id} is {current.status}: it may no longer be claimed",
            status=UPS_NO_LONGER_UPDATABLE,
        )
    return step_transition(step=step, to=StepStatus.STARTED, actor=actor, reason="UPS claimed")


@transaction.atomic
def step_ups_final(
    *, step: ScheduledProcedureStep, state: str, transaction_uid: str, actor: Actor
) -> ScheduledProcedureStep:
    """The performer that claimed a step ends it: UPS COMPLETED is the step COMPLETED, UPS
    CANCELED the step DISCONTINUED (it was started: images may exist)."""
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    if step.status == StepStatus.COMPLETED:
        raise UpsRefused(f"step {step.sps_id} is already COMPLETED", status=UPS_ALREADY_COMPLETED)
    if step.status != StepStatus.STARTED:
        status = UPS_NO_LONGER_UPDATABLE if step.status in FINAL_STEP_STATUSES else (
            UPS_NOT_IN_PROGRESS
        )
        raise UpsRefused(f"step {step.sps_id} is not IN PROGRESS", status=status)
    if not step.ups_transaction_uid or step.ups_transaction_uid != transaction_uid:
        raise UpsRefused(
            "the Transaction UID is not the one that claimed this workitem",
            status=UPS_WRONG_TRANSACTION_UID,
        )
    target = {"COMPLETED": StepStatus.COMPLETED, "CANCELED": StepStatus.DISCONTINUED}.get(state)
    if target is None:
        raise DomainError(f"a claimed workitem can become COMPLETED or CANCELED, not {state!r}")
    return step_transition(step=step, to=target, actor=actor, reason=f"UPS {state}")
