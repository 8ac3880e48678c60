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

from worklist import audit, identifiers, pn, routing, scheduling, signals
from worklist.audit import Actor
from worklist.errors import (
    DomainError,
    Duplicate,
    ErrorCode,
    InvalidTransition,
    NotFound,
    ScheduleConflict,
)
from worklist.models import (
    AuditEvent,
    Device,
    Order,
    OrderStatus,
    Patient,
    Priority,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatus,
    UpsSubscription,
    Visit,
)
from worklist.pn import PersonName
from worklist.states import (
    CLOSED_ORDER_STATUSES,
    FINAL_STEP_STATUSES,
    MOVABLE_STEP_STATUSES,
    PERFORMED_STEP_STATUSES,
    SCHEDULABLE_STEP_STATUSES,
    SLOT_OCCUPYING_STEP_STATUSES,
    STARTABLE_STEP_STATUSES,
    allowed_step_transitions,
    check_step_transition,
    check_undo_transition,
    derive_order_status,
    status_after_schedule,
)

#: How far back a booking may start: a walk-in takes the slot that began a few minutes ago.
PAST_BOOKING_GRACE = dt.timedelta(minutes=15)
#: ``status_reason`` of a step cancelled because the patient did not come (``step_no_show``),
#: followed by ``:`` and the site's reason code.
NO_SHOW = "no-show"
#: ``status_reason`` of an order (and its steps) cancelled by a person with a coded reason from
#: the site's list (``order_cancel(reason_code=...)``), followed by ``:`` and the code. Unlike a
#: cancel from the HIS or a free-text one, it can be taken back the same day
#: (``order_cancel_undo``).
DESK_CANCEL = "cancel"
#: Audit detail of a booking a person confirmed outside the station's opening hours.
OUTSIDE_HOURS_CONFIRMED = "outside opening hours, confirmed"
#: Front-desk actions ``step_undo`` can take back (audit actions of the status they set).
UNDOABLE_ACTIONS = ("step.arrived", "step.ready", "step.canceled")

#: Steps that occupy their station's time slot.

#: Patient demographics a caller may set or change, besides the name (PN groups); the REST API's
#: patient serializers list the same, in this order.
DEMOGRAPHICS = (
    "birth_date",
    "birth_date_precision",
    "age",
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
    *,
    patient_id: str,
    issuer: str = "",
    name: PersonName | str,
    actor: Actor,
    replace_romanisation: bool = False,
    **demographics,
) -> tuple[Patient, bool]:
    """Register a patient, or update the demographics of the one with this ID and issuer.

    The name goes through ``worklist.pn.resolve``: a Hanzi-only name gets its Pinyin alphabetic
    group (flagged as derived); see ``patient_update`` for ``replace_romanisation``.
    """
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
        return _create_patient(patient_id, issuer, name, actor, demographics), True
    return patient_update(
        patient=existing,
        actor=actor,
        name=name,
        replace_romanisation=replace_romanisation,
        **demographics,
    ), False


@transaction.atomic
def patient_create(
    *,
    patient_id: str,
    issuer: str = "",
    name: PersonName | str,
    actor: Actor,
    **demographics,
) -> Patient:
    """Register a patient the caller has just looked up and not found (the HIS feed, which
    reads the patient first to follow merges): ``patient_upsert`` without its second look-up.

    A patient registered meanwhile by another connection fails the unique (patient ID, issuer)
    constraint, which rolls the caller's transaction back, as ``patient_upsert`` would have.
    """
    unknown = set(demographics) - PATIENT_FIELDS
    if unknown:
        raise TypeError(f"unknown patient fields: {sorted(unknown)}")
    if not patient_id:
        raise DomainError("a patient needs a patient ID", code=ErrorCode.INVALID_VALUE)
    return _create_patient(patient_id, issuer, name, actor, demographics)


def _create_patient(
    patient_id: str, issuer: str, name: PersonName | str, actor: Actor, demographics: dict
) -> Patient:
    new = Patient(patient_id=patient_id, issuer=issuer, **demographics)
    _set_name(new, pn.resolve(name))
    new.save()
    audit.record(actor, "patient.create", new, after=audit.snapshot(new))
    return new


def _set_name(patient: Patient, resolved: pn.ResolvedName) -> None:
    patient.set_person_name(resolved.name)
    patient.name_alphabetic_derived = resolved.alphabetic_derived


@transaction.atomic
def patient_register(
    *,
    name: PersonName | str,
    actor: Actor,
    patient_id: str = "",
    issuer: str = "",
    **demographics,
) -> Patient:
    """Register a new patient; without a patient ID, ris draws one from RIS_PATIENT_ID_PATTERN.

    Unlike ``patient_upsert`` (the HIS feed, which updates a known patient), registering an ID
    that exists is refused: a clerk who types a used ID has the wrong patient in front of them.
    A drawn ID that someone already typed by hand is skipped, so generated IDs never collide.
    """
    unknown = set(demographics) - PATIENT_FIELDS
    if unknown:
        raise TypeError(f"unknown patient fields: {sorted(unknown)}")
    taken = Patient.objects.filter(issuer=issuer)
    if patient_id:
        if taken.filter(patient_id=patient_id).exists():
            raise Duplicate(
                f"patient {patient_id} of issuer {issuer or '(none)'} is already registered"
            )
    else:
        for _attempt in range(100):
            patient_id = identifiers.new_patient_id()
            if not taken.filter(patient_id=patient_id).exists():
                break
        else:  # pragma: no cover - a hundred hand-typed IDs in a row ahead of the counter
            raise Duplicate(
                "no free patient ID: raise the counter or change RIS_PATIENT_ID_PATTERN"
            )
    patient = Patient(patient_id=patient_id, issuer=issuer, **demographics)
    _set_name(patient, pn.resolve(name))  # a Hanzi-only name gets its derived Pinyin
    patient.save()
    audit.record(actor, "patient.create", patient, after=audit.snapshot(patient))
    return patient


def patient_update(
    *,
    patient: Patient,
    actor: Actor,
    name: PersonName | str | None = None,
    replace_romanisation: bool = False,
    **changes,
) -> Patient:
    """Change a patient's name or demographics; audited, and only saved when something changed.

    A name without an alphabetic group keeps the romanisation a person typed or the HIS sent
    (an HL7 A08 with Hanzi only never undoes the front desk's correction), unless
    ``replace_romanisation``: the web form sends the whole name as the clerk left it, and an
    alphabetic group the clerk emptied means "suggest the Pinyin again".
    """
    unknown = set(changes) - PATIENT_FIELDS
    if unknown:
        raise TypeError(f"unknown patient fields: {sorted(unknown)}")
    before = audit.snapshot(patient)
    if name is not None:
        _set_name(
            patient,
            pn.resolve(name)
            if replace_romanisation
            else pn.resolve(
                name,
                current=patient.person_name,
                current_derived=patient.name_alphabetic_derived,
            ),
        )
    if "birth_date" in changes and "birth_date_precision" not in changes:
        # A birth date given without a precision is a whole date (a correction in the web UI).
        changes["birth_date_precision"] = ""
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
class StepRequest:
    """One scheduled step of a requested procedure as an upstream Order Filler already planned
    it (HL7 IPC, IHE RAD-TF-2 4.4 / 4.13): what is given is kept, what is empty is ris's (a new
    SPS ID, the catalogue's modality and protocol, the procedure's station)."""

    sps_id: str = ""
    modality: str = ""
    station: Device | None = None
    location: str = ""
    #: Scheduled Protocol Code Sequence items [{"value", "scheme", "meaning"}]; None: catalogue's
    protocol_codes: list[dict] | None = None


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
    #: Identifiers an upstream Order Filler assigned (empty: ris assigns them)
    requested_procedure_id: str = ""
    study_instance_uid: str = ""
    #: The procedure's steps when they were planned upstream (empty: one step, ris's)
    steps: Sequence[StepRequest] = ()
    #: The modality the order names (HL7 OBR-24), for the station routing rules
    modality_hint: str = ""
    #: A person confirmed a start outside the station's opening hours (an extra session); dated
    #: exceptions (holiday, station down) still refuse it. See ``step_schedule``.
    outside_hours_ok: bool = False


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
    accession_number: str = "",
    refuse_past: bool = False,
) -> Order:
    """Create an order with one requested procedure and one scheduled step per procedure.

    ris assigns the accession number, requested procedure IDs, SPS IDs and Study Instance UIDs,
    unless an upstream Order Filler already did (``accession_number``, the identifiers of a
    ``ProcedureRequest`` and its ``steps``): those are kept as given, and refused (Duplicate)
    when another order already has them, since a modality would then mix two patients' images.
    A procedure with a start time becomes SCHEDULED; without one it waits UNSCHEDULED for the
    front desk and stays off the worklist. ``refuse_past``: a person booking (not a HIS
    reporting an exam already done) may not pick a start in the past (``check_not_past``).
    """
    if not procedures:
        raise DomainError("an order needs at least one requested procedure")
    _check_given_identifiers(accession_number, procedures)
    if refuse_past:
        for request in procedures:
            if request.scheduled_start is not None:
                check_not_past(request.scheduled_start)
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
                filler_order_number=filler_order_number
                or accession_number
                or ids.accession_number,
                accession_number=accession_number or ids.accession_number,
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
    built: list[tuple[RequestedProcedure, list[ScheduledProcedureStep]]] = []
    for index, request in enumerate(procedures):
        built.append(
            _build_procedure(
                order, request, ids, index, planned=[s for _, steps in built for s in steps]
            )
        )
    placed = derive_order_status(step.status for _, steps in built for step in steps)
    if placed != order.status:  # a timed step found no station: it waits UNSCHEDULED
        order.status = placed
        order.save(update_fields=["status"])
    _insert_procedures(built)
    audit.record_all(
        [
            audit.event(actor, "step.create", step, after=audit.snapshot(step))
            for _, steps in built
            for step in steps
        ]
        + [audit.event(actor, "order.create", order, after=audit.snapshot(order))]
    )
    signals.order_created.send(Order, order=order, actor=actor)
    return order


def _check_given_identifiers(accession_number: str, procedures: Sequence[ProcedureRequest]) -> None:
    """Identifiers assigned upstream must be new: one query per kind, and only when given."""
    checks = [
        ("accession number", Order, "accession_number", [accession_number]),
        ("requested procedure ID", RequestedProcedure, "requested_procedure_id",
         [r.requested_procedure_id for r in procedures]),
        ("Study Instance UID", RequestedProcedure, "study_instance_uid",
         [r.study_instance_uid for r in procedures]),
        ("SPS ID", ScheduledProcedureStep, "sps_id",
         [s.sps_id for r in procedures for s in r.steps]),
    ]
    for label, model, column, values in checks:
        given = [v for v in values if v]
        if not given:
            continue
        repeated = sorted({v for v in given if given.count(v) > 1})
        if repeated:
            raise Duplicate(f"{label} {repeated[0]!r} is given twice in the same order")
        taken = sorted(
            model.objects.filter(**{f"{column}__in": given}).values_list(column, flat=True)
        )
        if taken:
            raise Duplicate(f"{label} {taken[0]!r} already belongs to another order")


def _build_procedure(
    order: Order,
    request: ProcedureRequest,
    ids: identifiers.OrderIdentifiers,
    index: int,
    *,
    planned: Sequence[ScheduledProcedureStep],
) -> tuple[RequestedProcedure, list[ScheduledProcedureStep]]:
    """The requested procedure and its steps, placed but not saved (``_insert_procedures``)."""
    ptype = request.procedure_type
    procedure_fields, step_fields = _from_catalogue(ptype, request.description)
    procedure = RequestedProcedure(
        order=order,
        requested_procedure_id=request.requested_procedure_id or ids.requested_procedure_ids[index],
        study_instance_uid=request.study_instance_uid or ids.study_instance_uids[index],
        **procedure_fields,
        priority=request.priority or order.priority,
        **{k: v for k, v in request.extra.items() if k == "transport_arrangements"},
    )
    steps: list[ScheduledProcedureStep] = []
    for number, planned_step in enumerate(request.steps or [StepRequest()]):
        station = planned_step.station or request.station
        if station is None and request.scheduled_start is not None and request.pick_station:
            station = ptype.stations.filter(active=True).first()
        fields = dict(step_fields)
        if planned_step.modality:
            fields["modality"] = planned_step.modality
        if station is None and request.scheduled_start is not None:
            station = routing.choose_station(
                routing.RoutingFacts(
                    procedure_code=ptype.code_value,
                    modality=planned_step.modality or request.modality_hint or ptype.modality,
                    patient_class=order.visit.patient_class if order.visit else "",
                    department=order.requesting_service,
                    location=order.visit.assigned_location if order.visit else "",
                    priority=procedure.priority,
                )
            )
        if planned_step.protocol_codes is not None:
            fields["protocol_codes"] = planned_step.protocol_codes
        step = ScheduledProcedureStep(
            requested_procedure=procedure,
            sps_id=planned_step.sps_id
            or (ids.sps_ids[index] if number == 0 else identifiers.new_sps_id()),
            station=station,
            performing_physician=request.performing_physician,
            location=(planned_step.location or (station.location if station else ""))[:16],
            status=StepStatus.UNSCHEDULED,
            **fields,
        )
        # Without a station the step waits UNSCHEDULED for the front desk, time or not: it is
        # never served with an empty Scheduled Station AE Title (Type 1, PS3.4 K.6.1.2.2).
        if request.scheduled_start is not None and station is not None:
            _place(step, request.scheduled_start, station, planned=[*planned, *steps],
                   outside_hours_ok=request.outside_hours_ok)
            step.status = StepStatus.SCHEDULED
        steps.append(step)
    return procedure, steps


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


def _insert_procedures(
    built: list[tuple[RequestedProcedure, list[ScheduledProcedureStep]]],
) -> None:
    """Two INSERTs for all procedures and steps of an order, however many OBRs it had."""
    procedures = [procedure for procedure, _ in built]
    steps = [step for _, group in built for step in group]
    if len(steps) == 1 or not connection.features.can_return_rows_from_bulk_insert:
        for procedure, group in built:
            procedure.save(force_insert=True)
            for step in group:
                step.requested_procedure = procedure
                step.save(force_insert=True)
        return
    RequestedProcedure.objects.bulk_create(procedures)
    for procedure, group in built:
        for step in group:
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
    *,
    order: Order,
    actor: Actor,
    reason: str = "",
    discontinue: bool = False,
    reason_code: str = "",
) -> Order:
    """Cancel (or discontinue) every step of an order that has not been performed.

    Refused when a step already STARTED or COMPLETED: the modality has acquired images, so the
    exam must be completed or discontinued at the modality, not erased by the HIS.

    ``reason_code``: the front desk's coded reason (stored as ``cancel:<code>``); such a cancel
    can be taken back the same day by ``order_cancel_undo``.
    """
    if reason_code:
        reason = f"{DESK_CANCEL}:{reason_code}"
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
    refuse_past: bool = False,
    outside_hours_ok: bool = False,
) -> ScheduledProcedureStep:
    """Book an unscheduled step into a slot, or move a scheduled one (new time and/or station).

    ``refuse_past``: the front desk books forward only (``check_not_past``); the HIS and
    worklist imports may record what already happened. ``outside_hours_ok``: a person saw the
    warning (``scheduling.booking_warnings``) and confirmed a start outside the station's
    opening hours, an extra session; the audit event says so. Dated exceptions (holiday,
    station down, maintenance) and overlaps are refused all the same.
    """
    if refuse_past:
        check_not_past(start)
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    # A move undoes a check-in (docs/architecture.md, "Status model"); SCHEDULED -> SCHEDULED
    # is no status change.
    status = status_after_schedule(step.status)
    before = audit.snapshot(step)
    previous = step.status
    if duration_minutes is not None:
        if duration_minutes <= 0:
            raise DomainError("the expected duration must be at least one minute")
        step.expected_duration_minutes = duration_minutes
    station = station or step.station
    outside = (
        outside_hours_ok
        and station is not None
        and scheduling.booking_closed(station, start, start + dt.timedelta(
            minutes=step.expected_duration_minutes))
    )
    _place(step, start, station, outside_hours_ok=outside_hours_ok)
    step.status = status
    step.off_worklist_at = None  # a step booked again is back on the worklist
    step.save()
    action = "step.book" if previous == StepStatus.UNSCHEDULED else "step.reschedule"
    audit.record(
        actor, action, step, before=before, after=audit.snapshot(step),
        detail=OUTSIDE_HOURS_CONFIRMED if outside else "",
    )
    signals.step_rescheduled.send(ScheduledProcedureStep, step=step, actor=actor)
    if previous != status:
        signals.step_status_changed.send(
            ScheduledProcedureStep, step=step, previous=previous, actor=actor, reason=""
        )
    _refresh_order_status(step.requested_procedure.order, actor=actor)
    return step


#: Details of a step that a correction may change without moving it (HL7 XO with IPC)
STEP_DETAIL_FIELDS = frozenset({"location", "protocol_codes", "station"})


@transaction.atomic
def step_update(
    *, step: ScheduledProcedureStep, actor: Actor, **changes
) -> ScheduledProcedureStep:
    """Correct a step's details that do not move it: its location (0040,0011) and protocol
    (0040,0008), as an upstream Order Filler's RAD-13 procedure update (OMI^O23 XO with IPC)
    sends them; the station only of a step without a time (a timed step changes station by
    ``step_schedule``, which checks the slot). Refused once the step started or was cancelled.
    Audited; the order's receivers hear it as ``order_updated``."""
    unknown = set(changes) - STEP_DETAIL_FIELDS
    if unknown:
        raise TypeError(f"unknown step fields: {sorted(unknown)}")
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    if step.status not in SCHEDULABLE_STEP_STATUSES:
        raise InvalidTransition(
            f"step {step.sps_id} is {step.get_status_display().lower()}: its details can no "
            "longer be changed"
        )
    station = changes.get("station")
    if station is not None and step.scheduled_start is not None and station != step.station:
        raise InvalidTransition(
            f"step {step.sps_id} is booked: move it to {station.ae_title} with its time"
        )
    if station is not None and station.modality and station.modality != step.modality:
        raise InvalidTransition(
            f"station {station.ae_title} is a {station.modality} station, step {step.sps_id} "
            f"is {step.modality}"
        )
    before = audit.snapshot(step)
    for key, value in changes.items():
        setattr(step, key, value)
    after = audit.snapshot(step)
    if after != before:
        step.save()
        audit.record(actor, "step.update", step, before=before, after=after)
        signals.order_updated.send(Order, order=step.requested_procedure.order, actor=actor)
    return step


@transaction.atomic
def step_book_first_free(
    *, step: ScheduledProcedureStep, actor: Actor, after: dt.datetime | None = None
) -> ScheduledProcedureStep | None:
    """Book a waiting step into the first free slot the search finds (``next_free_slots``), or
    leave it waiting (None) when there is none within the horizon. The HL7 auto-booking."""
    slots = scheduling.next_free_slots(step=step, limit=1, after=after)
    if not slots:
        return None
    slot = slots[0]
    return step_schedule(step=step, start=slot.start, station=slot.station, actor=actor)


@transaction.atomic
def order_book_waiting(*, order: Order, actor: Actor) -> Order:
    """Book every waiting step of an order into its first free slot (``step_book_first_free``),
    in procedure order, so each later step sees the earlier ones as the patient's. A step with
    no free slot in the horizon stays waiting for the front desk."""
    waiting = ScheduledProcedureStep.objects.filter(
        requested_procedure__order=order, status=StepStatus.UNSCHEDULED
    ).select_related("requested_procedure__order__visit", "requested_procedure__procedure_type")
    for step in waiting.order_by("pk"):
        step_book_first_free(step=step, actor=actor)
    return Order.objects.get(pk=order.pk)


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


@transaction.atomic
def step_remove_from_worklist(
    *, step: ScheduledProcedureStep, actor: Actor, reason: str
) -> ScheduledProcedureStep:
    """Take a waiting step off the Modality Worklist without changing its status.

    The step stays with its order (never deleted) and the HIS is not told: nothing about the
    order changed. Booking it again (``step_schedule``) puts it back.
    """
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    if step.off_worklist_at is not None:
        return step
    before = audit.snapshot(step, ["status", "off_worklist_at"])
    step.off_worklist_at = timezone.now()
    step.save(update_fields=["off_worklist_at", "updated_at"])
    audit.record(
        actor, "step.off_worklist", step, before=before,
        after=audit.snapshot(step, ["status", "off_worklist_at"]), detail=reason,
    )


def check_not_past(start: dt.datetime, *, now: dt.datetime | None = None) -> None:
    """Refuse a start more than ``PAST_BOOKING_GRACE`` ago: a slot in the past can't be kept, and
    the modality would show the patient as overdue from the first minute."""
    now = now or timezone.now()
    if start < now - PAST_BOOKING_GRACE:
        local = timezone.localtime(start)
        raise DomainError(
            f"{local:%Y-%m-%d %H:%M} is in the past: choose a later time",
            code=ErrorCode.IN_THE_PAST,
            params={"start": f"{local:%Y-%m-%d %H:%M}"},
        )


@transaction.atomic
def step_no_show(
    *, step: ScheduledProcedureStep, actor: Actor, reason_code: str = ""
) -> ScheduledProcedureStep:
    """The patient did not come: cancel the step with ``no-show:<reason code>`` as its reason.

    Unlike an order cancel, a no-show can be taken back the same day by ``step_undo`` (the
    patient turns up late after all).
    """
    reason = f"{NO_SHOW}:{reason_code}" if reason_code else NO_SHOW
    return step_transition(step=step, to=StepStatus.CANCELED, actor=actor, reason=reason)


def is_no_show(step: ScheduledProcedureStep) -> bool:
    return step.status == StepStatus.CANCELED and (
        step.status_reason == NO_SHOW or step.status_reason.startswith(f"{NO_SHOW}:")
    )


def is_desk_cancel(step_or_order: ScheduledProcedureStep | Order) -> bool:
    """Cancelled by a person with a coded reason (``order_cancel(reason_code=...)``)."""
    cancelled = (
        OrderStatus.CANCELED if isinstance(step_or_order, Order) else StepStatus.CANCELED
    )
    return step_or_order.status == cancelled and step_or_order.status_reason.startswith(
        f"{DESK_CANCEL}:"
    )


def last_undoable_event(
    step: ScheduledProcedureStep, *, desk_cancel: bool = False
) -> AuditEvent | None:
    """The front-desk action ``step_undo`` would take back, or None.

    Only the step's latest status change counts (anything after it, an MPPS N-CREATE or a move,
    makes the old click history), only a person's click, and only today: by tomorrow the HIS
    has acted on the status (docs/architecture.md, "Status model"). A cancel counts only when
    it was a no-show, or with ``desk_cancel`` (``order_cancel_undo``) a desk's coded cancel.
    """
    latest = (
        AuditEvent.objects.filter(
            object_type=ScheduledProcedureStep._meta.label,
            object_id=str(step.pk),
            after__has_key="status",
        )
        .exclude(action="order.status")
        .order_by("-at", "-id")
        .first()
    )
    if latest is None or latest.action not in UNDOABLE_ACTIONS:
        return None
    if latest.actor_type != AuditEvent.ActorType.USER:
        return None
    if timezone.localtime(latest.at).date() != timezone.localdate():
        return None
    if (latest.after or {}).get("status") != step.status:
        return None
    if latest.action == "step.canceled" and not (
        is_desk_cancel(step) if desk_cancel else is_no_show(step)
    ):
        return None  # a cancel by the HIS, or a free-text one, is final
    return latest


@transaction.atomic
def step_undo(*, step: ScheduledProcedureStep, actor: Actor) -> ScheduledProcedureStep:
    """Take back today's check-in (arrived, ready) or no-show: the step returns to the status
    it had before, through ``check_undo_transition``, audited as ``step.undo``; the order status
    is derived again, so the HIS hears of a no-show taken back (ORC-5 back to SC).

    A no-show taken back claims its slot again: refused when someone else was booked into it
    meanwhile (ScheduleConflict).
    """
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    undone = last_undoable_event(step)
    if undone is None:
        raise DomainError(
            f"step {step.sps_id} has no check-in or no-show of today to undo",
            code=ErrorCode.NOTHING_TO_UNDO,
        )
    if step.scheduled_start is None:
        raise DomainError(
            f"step {step.sps_id} has no slot to go back to", code=ErrorCode.NOTHING_TO_UNDO
        )
    _restore(step, undone, actor=actor)
    _refresh_order_status(step.requested_procedure.order, actor=actor)
    return step


def _restore(step: ScheduledProcedureStep, undone: AuditEvent, *, actor: Actor) -> None:
    """Put a (locked) step back into the status ``undone`` took it from, through
    ``check_undo_transition``; a cancelled step with a slot claims it again (ScheduleConflict
    when someone else was booked into it meanwhile)."""
    previous_status = StepStatus((undone.before or {}).get("status") or StepStatus.SCHEDULED)
    check_undo_transition(step.status, previous_status)
    before = audit.snapshot(step)
    current = step.status
    if current == StepStatus.CANCELED and step.scheduled_start is not None:
        _place(step, step.scheduled_start, step.station)
    step.status = previous_status
    step.status_reason = (undone.before or {}).get("status_reason", "")[:200]
    step.save(update_fields=["status", "status_reason", "scheduled_end", "updated_at"])
    audit.record(
        actor, "step.undo", step, before=before, after=audit.snapshot(step), detail=undone.action
    )
    signals.step_status_changed.send(
        ScheduledProcedureStep, step=step, previous=current, actor=actor, reason="undo"
    )


def order_cancel_undoable(order: Order) -> bool:
    """Whether the order page offers to take back its cancel: a desk's coded cancel of today.
    A hint without queries; ``order_cancel_undo`` checks each step's trail."""
    return is_desk_cancel(order) and timezone.localtime(order.updated_at).date() == (
        timezone.localdate()
    )


@transaction.atomic
def order_cancel_undo(*, order: Order, actor: Actor) -> Order:
    """Take back today's coded cancel of an order by the front desk (``order_cancel`` with a
    ``reason_code``): every step it cancelled returns to the status it had, claiming its slot
    again, each audited as ``step.undo``; the order status is derived again, so the HIS hears
    that the order is back (ORC-5 SC).

    Refused (NOTHING_TO_UNDO) for a cancel by the HIS, a free-text one, or one of another day;
    ScheduleConflict when a slot was given to someone else meanwhile (nothing is restored then).
    Steps cancelled before the order (an earlier no-show) stay cancelled.
    """
    order = Order.objects.select_for_update().get(pk=order.pk)
    steps = list(
        ScheduledProcedureStep.objects.select_for_update()
        .filter(requested_procedure__order=order, status=StepStatus.CANCELED)
        .order_by("pk")
    )
    undone = [(step, last_undoable_event(step, desk_cancel=True)) for step in steps]
    undone = [(step, event) for step, event in undone if event is not None]
    if not is_desk_cancel(order) or not undone:
        raise DomainError(
            f"order {order.accession_number} has no cancel of today to undo",
            code=ErrorCode.NOTHING_TO_UNDO,
        )
    for step, event in undone:
        _restore(step, event, actor=actor)
    return _refresh_order_status(order, actor=actor)


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
    outside_hours_ok: bool = False,
) -> None:
    """Set time and station after checking opening hours and overlaps on that station.

    ``planned``: steps placed earlier in the same call but not saved yet (the other procedures of
    a new order), which occupy their slots as much as the stored ones. ``outside_hours_ok``: a
    person confirmed a start outside the opening hours (``step_schedule``).
    """
    if timezone.is_naive(start):
        raise DomainError("a scheduled start needs a time zone")
    end = start + dt.timedelta(minutes=step.expected_duration_minutes)
    if station is not None:
        _check_opening_hours(station, start, end, outside_hours_ok=outside_hours_ok)
        if not station.allow_overbooking:
            clash = _first_clash(station, start, end, exclude=step.pk)
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
                    f"{clash.expected_duration_minutes} min (step {clash.sps_id})",
                    params={
                        "station": station.ae_title,
                        "start": f"{local:%Y-%m-%d %H:%M}",
                        "minutes": clash.expected_duration_minutes,
                    },
                )
        step.station = station
        if station.location:
            step.location = station.location[:16]
    step.scheduled_start = start
    step.scheduled_end = end


#: Steps shorter than this are found by a two-sided range on (station, scheduled_start); the
#: few longer ones (an all-day block, an imported long session) by (station, expected duration).
SHORT_STEP_MINUTES = 8 * 60
#: The upper end of the duration range: two bounds make SQLite prefer that index for the long
#: arm (one-sided ranges on two indexes tie in its estimates).
_LONGEST_MINUTES = 2**31 - 1


def _first_clash(
    station: Device, start: dt.datetime, end: dt.datetime, *, exclude: int | None
) -> ScheduledProcedureStep | None:
    """The earliest occupying step of ``station`` that overlaps [start, end), if any.

    "Starts before ``end`` and ends after ``start``" alone bounds the index scan from above only:
    the database read every earlier step of the station, and a booking (made after the
    station's history) grew with it. A step lasts less than ``expected_duration_minutes`` + 1
    minute (every write sets its end from its start and that duration), so a step shorter than
    SHORT_STEP_MINUTES that overlaps starts after ``start - SHORT_STEP_MINUTES``: that arm reads
    a few hours of the station. Longer steps come from the duration index. One statement.
    """
    occupying = ScheduledProcedureStep.objects.filter(
        station=station,
        status__in=SLOT_OCCUPYING_STEP_STATUSES,
        scheduled_start__lt=end,
        scheduled_end__gt=start,
    ).exclude(pk=exclude)
    near = occupying.filter(
        scheduled_start__gt=start - dt.timedelta(minutes=SHORT_STEP_MINUTES + 1)
    ).order_by()
    long = occupying.filter(
        expected_duration_minutes__range=(SHORT_STEP_MINUTES, _LONGEST_MINUTES)
    ).order_by()
    # No ORDER BY on the compound: SQLite would then merge two ordered scans, and order the
    # long arm by (station, scheduled_start) too, the one-sided range again. Overlapping steps
    # on a station that refuses overbooking are none or a few (an import may have overbooked it
    # before): the earliest is taken here.
    clashes = list(near.union(long, all=True))
    return min(clashes, key=lambda other: (other.scheduled_start, other.sps_id), default=None)


def _check_opening_hours(
    station: Device, start: dt.datetime, end: dt.datetime, *, outside_hours_ok: bool = False
) -> None:
    """Refuse a booking outside the station's weekly template or inside one of its exceptions
    (holiday, station down, maintenance), or outside opens_at-closes_at for a station without
    a template (worklist.scheduling). ``outside_hours_ok`` lets a confirmed booking outside the
    hours through, never one into an exception."""
    if station.has_schedule:
        why = scheduling.check_open(station, start, end)
        if why == "closed" and outside_hours_ok:
            return
        if why is not None:
            reason = "outside its opening hours" if why == "closed" else why.lower()
            raise DomainError(
                f"{station.ae_title} is closed at this time ({reason})",
                code=ErrorCode.OUTSIDE_OPENING_HOURS,
                params={"station": station.ae_title, "why": why},
            )
        return
    if station.opens_at is None or station.closes_at is None or outside_hours_ok:
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
            params={
                "station": station.ae_title,
                "opens": f"{station.opens_at:%H:%M}",
                "closes": f"{station.closes_at:%H:%M}",
            },
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
    signals.patient_identity_changed.send(
        Patient, patient=target, actor=actor, reason="merge",
        prior={"id": source.patient_id, "issuer": source.issuer},
    )
    return target


@transaction.atomic
def patient_change_identifier(
    *, patient: Patient, patient_id: str, issuer: str, actor: Actor
) -> Patient:
    """Give a patient another ID (HL7 A47): the same person, orders and visits, under the new ID.

    The worklist reads the patient through each step's order, so every open item shows the new
    Patient ID at once. An ID that already belongs to another patient is refused: that is a
    merge (A40), not a correction.
    """
    if not patient_id:
        raise DomainError("a patient needs a patient ID", code=ErrorCode.INVALID_VALUE)
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if (patient.patient_id, patient.issuer) == (patient_id, issuer):
        return patient
    clash = (
        Patient.objects.filter(patient_id=patient_id, issuer=issuer).exclude(pk=patient.pk).first()
    )
    if clash is not None:
        raise Duplicate(
            f"patient ID {patient_id!r} ({issuer or 'no issuer'}) already belongs to another "
            "patient: merge the two (A40) instead of changing the identifier"
        )
    before = audit.snapshot(patient)
    old = f"{patient.patient_id} ({patient.issuer})"
    prior = {"id": patient.patient_id, "issuer": patient.issuer}
    patient.patient_id, patient.issuer = patient_id, issuer
    patient.save(update_fields=["patient_id", "issuer", "updated_at"])
    audit.record(
        actor, "patient.identifier_change", patient, before=before, after=audit.snapshot(patient),
        detail=f"was {old}",
    )
    signals.patient_identity_changed.send(
        Patient, patient=patient, actor=actor, reason="identifier change", prior=prior
    )
    return patient


@transaction.atomic
def patient_change_other_identifier(
    *, patient: Patient, issuer: str, old_id: str, new_id: str, id_type: str = "", actor: Actor
) -> Patient:
    """Change a patient's ID in another identifier domain than its own (HL7 A47 naming one of
    its Other Patient IDs): that domain's entry of Other Patient IDs (0010,1002) changes, the
    Patient ID stays. Audited as an identifier change; every open worklist item shows it."""
    if not new_id:
        raise DomainError("a patient ID cannot be empty", code=ErrorCode.INVALID_VALUE)
    patient = Patient.objects.select_for_update().get(pk=patient.pk)
    if Patient.objects.filter(patient_id=new_id, issuer=issuer).exclude(pk=patient.pk).exists():
        raise Duplicate(
            f"patient ID {new_id!r} ({issuer or 'no issuer'}) already belongs to another "
            "patient: merge the two (A40) instead of changing the identifier"
        )
    before = audit.snapshot(patient)
    kept = [
        i for i in patient.other_ids or []
        if (i.get("id"), i.get("issuer", "")) not in ((old_id, issuer), (new_id, issuer))
        or i.get("type") == "linked"
    ]
    patient.other_ids = [*kept, {"id": new_id, "issuer": issuer, "type": id_type}]
    patient.save(update_fields=["other_ids", "updated_at"])
    audit.record(
        actor, "patient.identifier_change", patient, before=before, after=audit.snapshot(patient),
        detail=f"{issuer or 'no issuer'}: was {old_id}",
    )
    signals.patient_identity_changed.send(
        Patient, patient=patient, actor=actor, reason="identifier change",
        prior={"id": old_id, "issuer": issuer},
    )
    return patient


@transaction.atomic
def patient_link(*, patient: Patient, other: Patient, linked: bool, actor: Actor) -> None:
    """Link (HL7 A24) or unlink (A37) two patient records of the same person: each lists the
    other's ID among its Other Patient IDs (0010,1002), or no longer does."""
    if patient.pk == other.pk:
        raise DomainError("a patient cannot be linked to itself")
    for one, two in ((patient, other), (other, patient)):
        one = Patient.objects.select_for_update().get(pk=one.pk)
        entry = {"id": two.patient_id, "issuer": two.issuer, "type": "linked"}
        kept = [
            i for i in one.other_ids
            if (i.get("id"), i.get("issuer", "")) != (two.patient_id, two.issuer)
        ]
        before = audit.snapshot(one)
        one.other_ids = [*kept, entry] if linked else kept
        after = audit.snapshot(one)
        if after != before:
            one.save(update_fields=["other_ids", "updated_at"])
            audit.record(actor, "patient.update", one, before=before, after=after)
    signals.patients_linked.send(
        Patient, patient=patient, other=other, linked=linked, actor=actor
    )


# --- worklist files (ris import-worklist) -----------------------------------------------------


@dataclass
class ImportedStep:
    """One scheduled step read from a worklist file, with the identifiers it already carries.

    Empty identifiers are assigned by ris. ``order``, ``procedure`` and ``step`` hold model field
    values of Order, RequestedProcedure and ScheduledProcedureStep. ``more_stations``: further
    values of a multi-valued Scheduled Station AE Title (``CT1\\CT2``), each of which gets a
    step of its own (ris's step has one station).
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
    more_stations: list[Device] = field(default_factory=list)


#: order_import outcomes
IMPORT_CREATED, IMPORT_UPDATED, IMPORT_UNCHANGED = "created", "updated", "unchanged"
#: Steps whose station and time a re-import may still change (not yet performed).


@transaction.atomic
def order_import(
    *, patient: Patient, entry: ImportedStep, actor: Actor, visit: Visit | None = None
) -> tuple[ScheduledProcedureStep, str]:
    """Take over a step of an existing worklist (a DCMTK/Orthanc ``.wl`` file) as it is.

    Unlike ``order_create`` it keeps the file's accession number, IDs, UID, station and time
    (no overlap or opening-hours check: the schedule already happened elsewhere), so modalities
    see the same entries after the migration. Idempotent: a step whose SPS ID (or, without one,
    requested procedure) is already there is found again; if the file now names another station
    or time and the step is not performed yet, the step follows the file (``"updated"``),
    otherwise nothing changes (``"unchanged"``). A file with the accession number of an imported
    order but another Requested Procedure Code is another requested procedure of that order,
    even when it repeats the first file's Requested Procedure ID or Study Instance UID (then ris
    assigns new ones: they are unique in ris).
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
    code = entry.procedure.get("code_value", "")
    identifiers_taken = False
    if (
        procedure is not None
        and order is not None
        and procedure.order_id == order.pk
        and code
        and procedure.code_value
        and procedure.code_value != code
    ):
        # The same accession for another exam (generators that reuse the RP ID or the UID):
        # that exam's procedure if it was imported before, else a new one.
        identifiers_taken = True
        procedure = order.procedures.filter(code_value=code).order_by("pk").first()
    if procedure is not None and order is not None and procedure.order_id != order.pk:
        raise Duplicate(
            f"requested procedure {procedure.requested_procedure_id} belongs to another order"
        )
    existing = None
    if entry.sps_id:
        existing = ScheduledProcedureStep.objects.filter(sps_id=entry.sps_id).first()
        if existing is not None and procedure is not None and (
            existing.requested_procedure_id != procedure.pk
        ):
            raise Duplicate(f"SPS ID {entry.sps_id} belongs to another requested procedure")
    elif procedure is not None:
        existing = procedure.steps.order_by("pk").first()
    if existing is not None:
        changed = _reimport_step(existing, entry.station, entry, actor)
        changed |= _import_more_stations(existing, entry, actor)
        return existing, IMPORT_UPDATED if changed else IMPORT_UNCHANGED
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
        rp_id = entry.requested_procedure_id
        uid = entry.study_instance_uid
        if identifiers_taken:
            if RequestedProcedure.objects.filter(requested_procedure_id=rp_id).exists():
                rp_id = ""
            if RequestedProcedure.objects.filter(study_instance_uid=uid).exists():
                uid = ""
        procedure = RequestedProcedure.objects.create(
            order=order,
            requested_procedure_id=rp_id or identifiers.new_requested_procedure_id(),
            study_instance_uid=uid or identifiers.new_study_instance_uid(),
            **entry.procedure,
        )
    step_fields = dict(entry.step)
    duration = step_fields.pop("expected_duration_minutes", None) or 15
    end = entry.scheduled_end or entry.scheduled_start + dt.timedelta(minutes=duration)
    step = ScheduledProcedureStep.objects.create(
        requested_procedure=procedure,
        sps_id=entry.sps_id or identifiers.new_sps_id(),
        station=entry.station,
        scheduled_start=entry.scheduled_start,
        scheduled_end=end,
        expected_duration_minutes=max(1, int((end - entry.scheduled_start).total_seconds() // 60)),
        status=entry.status,
        **step_fields,
    )
    audit.record(actor, "step.import", step, after=audit.snapshot(step))
    _import_more_stations(step, entry, actor)
    new_status = derive_order_status(
        ScheduledProcedureStep.objects.filter(requested_procedure__order=order).values_list(
            "status", flat=True
        )
    )
    if new_status != order.status:
        order.status = new_status
        order.save(update_fields=["status", "updated_at"])
    return step, IMPORT_CREATED


def _reimport_step(
    step: ScheduledProcedureStep, station: Device | None, entry: ImportedStep, actor: Actor
) -> bool:
    """The file's station and time, for a step found again; True if it changed."""
    if step.status not in MOVABLE_STEP_STATUSES:
        return False
    duration = entry.step.get("expected_duration_minutes") or step.expected_duration_minutes
    end = entry.scheduled_end or entry.scheduled_start + dt.timedelta(minutes=duration)
    wanted = {"station_id": station.pk if station else None,
              "scheduled_start": entry.scheduled_start, "scheduled_end": end}
    if all(getattr(step, key) == value for key, value in wanted.items()):
        return False
    before = audit.snapshot(step)
    step.station = station
    step.scheduled_start, step.scheduled_end = entry.scheduled_start, end
    step.expected_duration_minutes = max(
        1, int((end - entry.scheduled_start).total_seconds() // 60)
    )
    step.save(update_fields=["station", "scheduled_start", "scheduled_end",
                             "expected_duration_minutes", "updated_at"])
    audit.record(actor, "step.reimport", step, before=before, after=audit.snapshot(step))
    return True


def _import_more_stations(
    step: ScheduledProcedureStep, entry: ImportedStep, actor: Actor
) -> bool:
    """One further step (a copy of ``step`` with its own SPS ID) per further station; found
    again on a re-import by its procedure and station. True if one was created or moved."""
    changed = False
    for station in entry.more_stations:
        sibling = (
            step.requested_procedure.steps.filter(station=station).exclude(pk=step.pk).first()
        )
        if sibling is not None:
            changed |= _reimport_step(sibling, station, entry, actor)
            continue
        copy = ScheduledProcedureStep.objects.get(pk=step.pk)
        copy.pk = None
        copy.sps_id = identifiers.new_sps_id()
        copy.station = station
        copy.save(force_insert=True)
        audit.record(actor, "step.import", copy, after=audit.snapshot(copy))
        changed = True
    return changed


# --- access (audited reads) ---------------------------------------------------------------------


def patient_viewed(*, patient: Patient, actor: Actor, channel: str) -> None:
    """A person looked at a patient's record (web page, API): the security officer's question
    "who saw this patient" is answered by the audit trail."""
    audit.record_access(actor, "patient.read", object_type=Patient._meta.label,
                        object_id=patient.pk, detail=channel)


def peer_authentication_failed(*, actor: Actor, peer: str, reason: str) -> None:
    """A DICOM or HL7 peer whose TLS certificate did not match the identity it claimed (IHE
    ATNA Security Alert, Node Authentication failure)."""
    audit.record_access(actor, "peer.authentication_failed", object_type="peer",
                        object_id=peer[:64], detail=reason, after={"peer": peer})


def exported(*, actor: Actor, kind: str, what: str, object_id: str = "") -> None:
    """Patient data leaving ris on paper or as a file (a printed day plan or slip, a CSV
    table): who took what (IHE ATNA Export). ``kind`` is ``print`` or ``statistics``."""
    audit.record_access(actor, f"export.{kind}", object_type="export", object_id=object_id or kind,
                        detail=what)


def worklist_queried(
    *, actor: Actor, device: str, keys: dict[str, str], matches: int, peer: str
) -> None:
    """A modality's worklist query: which device, which keys (they may name a patient: the
    trail, not the log, is where that goes), how many steps it was shown."""
    audit.record_access(
        actor, "mwl.query", object_type="worklist.query", object_id=device,
        detail=f"{matches} matches for {device} from {peer}",
        after={"keys": keys, "matches": matches, "peer": peer},
    )


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


def _check_claimer(step: ScheduledProcedureStep, transaction_uid: str) -> None:
    """Only the performer holding the Transaction UID may change a claimed workitem."""
    if step.status != StepStatus.STARTED:
        raise UpsRefused(
            f"step {step.sps_id} is not IN PROGRESS",
            status=UPS_NO_LONGER_UPDATABLE if step.status in FINAL_STEP_STATUSES
            else UPS_NOT_IN_PROGRESS,
        )
    if not step.ups_transaction_uid or step.ups_transaction_uid != transaction_uid:
        raise UpsRefused(
            "the Transaction UID is not the one that claimed this workitem",
            status=UPS_WRONG_TRANSACTION_UID,
        )


@transaction.atomic
def step_ups_progress(
    *, step: ScheduledProcedureStep, transaction_uid: str, progress: dict, actor: Actor
) -> None:
    """The performer reports progress on its claimed workitem (PS3.4 CC.2.6, N-SET of the
    Progress Information Sequence). ris keeps no progress column: the audit row is the record,
    and it is what the UPS event channel reports to the subscribers (a UPS Progress Report)."""
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    _check_claimer(step, transaction_uid)
    audit.record(actor, "step.ups_progress", step, after=progress)


@transaction.atomic
def step_ups_cancel_request(
    *, step: ScheduledProcedureStep, actor: Actor, reason: str = "", contact: dict | None = None
) -> ScheduledProcedureStep:
    """Request the cancellation of a workitem (PS3.4 CC.2.2).

    A SCHEDULED one is nobody's yet: it is cancelled at once (the step CANCELED). An IN
    PROGRESS one belongs to its performer, who decides: the request is recorded and the
    subscribers are told (a UPS Cancel Requested event); the step stays STARTED. A final one
    may no longer change (C300H).
    """
    step = ScheduledProcedureStep.objects.select_for_update().get(pk=step.pk)
    if step.status == StepStatus.STARTED:
        audit.record(
            actor, "step.ups_cancel_requested", step,
            after={"reason": reason[:64], "requesting_ae": actor.name[:16], **(contact or {})},
            detail=reason,
        )
        return step
    if step.status in FINAL_STEP_STATUSES or step.status == StepStatus.UNSCHEDULED:
        raise UpsRefused(
            f"step {step.sps_id} is {step.status}: it may no longer be cancelled",
            status=UPS_NO_LONGER_UPDATABLE,
        )
    return step_transition(
        step=step, to=StepStatus.CANCELED, actor=actor,
        reason=reason or "UPS cancellation requested",
    )


#: The well-known UPS SOP Instance UIDs of PS3.4 Table CC.1-1 that name the global subscription.
UPS_GLOBAL_SUBSCRIPTION_UID = "1.2.840.10008.5.1.4.34.5"
UPS_FILTERED_GLOBAL_SUBSCRIPTION_UID = "1.2.840.10008.5.1.4.34.5.1"


@transaction.atomic
def ups_subscribe(
    *,
    ae_title: str,
    actor: Actor,
    step: ScheduledProcedureStep | None = None,
    deletion_lock: bool = False,
    filter_keys: dict | None = None,
) -> UpsSubscription:
    """Subscribe an AE to one workitem's event reports, or globally (``step`` None) to every
    workitem's, optionally only those matching ``filter_keys`` (PS3.4 CC.2.3.1). Subscribing
    again replaces the earlier options and ends a suspension."""
    ae_title = ae_title.strip()
    if not ae_title or len(ae_title) > 16:
        raise DomainError("the subscriber's AE title must be 1 to 16 characters")
    subscription, _ = UpsSubscription.objects.update_or_create(
        ae_title=ae_title, step=step,
        defaults={"subscribed": True, "deletion_lock": deletion_lock,
                  "filter_keys": filter_keys or None, "suspended_at": None},
    )
    audit.record(actor, "ups.subscribe", subscription, after=audit.snapshot(subscription))
    return subscription


@transaction.atomic
def ups_unsubscribe(
    *, ae_title: str, actor: Actor, step: ScheduledProcedureStep | None = None
) -> None:
    """End a subscription (PS3.4 CC.2.3.2). Globally: the global one and every one of the AE's
    workitem subscriptions. One workitem: its row goes; while a global subscription stands the
    row stays, unsubscribed, so the global one does not include it again."""
    ae_title = ae_title.strip()
    rows = UpsSubscription.objects.filter(ae_title=ae_title)
    if step is None:
        rows.delete()
        audit.record_access(actor, "ups.unsubscribe", object_type="worklist.UpsSubscription",
                            detail=f"{ae_title}: global")
        return
    if rows.filter(step__isnull=True).exists():
        UpsSubscription.objects.update_or_create(
            ae_title=ae_title, step=step, defaults={"subscribed": False}
        )
    else:
        rows.filter(step=step).delete()
    audit.record(actor, "ups.unsubscribe", step, detail=ae_title)


@transaction.atomic
def ups_suspend_global(*, ae_title: str, actor: Actor) -> UpsSubscription:
    """Suspend an AE's global subscription (PS3.4 CC.2.3.2): workitems created from now on are
    no longer included; those it already included still are."""
    subscription = UpsSubscription.objects.filter(
        ae_title=ae_title.strip(), step__isnull=True
    ).first()
    if subscription is None:
        raise NotFound(f"{ae_title} holds no global subscription")
    if subscription.suspended_at is None:
        subscription.suspended_at = timezone.now()
        subscription.save(update_fields=["suspended_at"])
    audit.record(actor, "ups.suspend", subscription, after=audit.snapshot(subscription))
    return subscription
