"""Writes of the MPPS domain: N-CREATE, N-SET and the reconciliation of exception PPS.

Every function is one transaction. A request is validated completely (``mpps.validation``)
before the first write, and any later failure rolls everything back, so a refused request leaves
nothing behind. Step status follows the PPS only through ``worklist.services.step_transition``
(which audits and emits ``order_status_changed`` for the HIS); ``mpps.signals.pps_received`` is
sent inside the same transaction for the PACS forwarder.

How a step follows its PPS (IHE RAD-6/RAD-7; several PPS may belong to one step):

- a PPS IN PROGRESS starts the step;
- the step is COMPLETED when none of its PPS is still in progress and at least one completed;
- DISCONTINUED when all of its PPS were discontinued;
- back to SCHEDULED when its PPS were all discontinued with 110514 (DCM) "Incorrect worklist entry
  selected": the modality picked the wrong entry, so this step was not performed. Such a PPS no
  longer counts for the step.

Only for steps whose device lets MPPS move them (``worklist.states.progress_mode``: MPPS, or
BOTH, where MPPS wins over the images); a device set to "images only" has its PPS recorded,
linked and forwarded, and its steps moved by ``mpps.forwarding.progress``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import IntegrityError, transaction
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset

from mpps import signals
from mpps.models import (
    EXCEPTION_STATES,
    PerformedProcedureStep,
    PerformedSeries,
    PPSStatus,
    Reconciliation,
    StepLink,
)
from mpps.validation import (
    DUPLICATE_SOP_INSTANCE,
    ERROR_ID_NO_LONGER_UPDATABLE,
    NO_SUCH_SOP_INSTANCE,
    PROCESSING_FAILURE,
    CreateRequest,
    MppsError,
    SeriesInfo,
    StepRef,
    is_incorrect_worklist_entry,
    validate_create,
    validate_set,
)
from worklist import audit
from worklist import services as worklist_services
from worklist.audit import Actor
from worklist.errors import DomainError, InvalidTransition
from worklist.models import Device, Order, ScheduledProcedureStep, StepStatus
from worklist.states import (
    INCORRECT_WORKLIST_ENTRY,
    STARTABLE_STEP_STATUSES,
    allowed_step_transitions,
    mpps_moves_steps,
    progress_mode,
)

logger = logging.getLogger("mpps")

S = StepStatus
#: Fields of a PPS the audit trail shows (the dataset itself is in the PPS row).
_AUDIT_FIELDS = (
    "sop_instance_uid",
    "status",
    "pps_id",
    "station_ae_title",
    "modality",
    "started_at",
    "ended_at",
    "discontinuation_reason",
    "reconciliation",
)
_DUPLICATE = "A PPS with this SOP Instance UID exists already"


class StepConflict(InvalidTransition):
    """A linked step cannot follow its PPS (cancelled, unscheduled, already discontinued)."""


# --- N-CREATE ----------------------------------------------------------------------------------


def pps_create(
    *, sop_instance_uid: str, dataset: Dataset, actor: Actor, calling_ae_title: str = ""
) -> PerformedProcedureStep:
    """Store a new PPS (IN PROGRESS), link it to its scheduled steps and start them.

    Raises ``MppsError`` (nothing stored) when the attribute list is invalid or the SOP Instance
    UID exists already. A PPS whose Scheduled Step Attributes name no known step is stored as an
    UNMATCHED exception: the modality has acquired images, so refusing it would only lose them.
    """
    # Validated before the transaction: on SQLite BEGIN IMMEDIATE takes the write lock.
    request = validate_create(dataset)
    with transaction.atomic():
        return _create(sop_instance_uid, request, actor, calling_ae_title)


def _create(
    sop_instance_uid: str, request: CreateRequest, actor: Actor, calling_ae_title: str
) -> PerformedProcedureStep:
    if PerformedProcedureStep.objects.filter(sop_instance_uid=sop_instance_uid).exists():
        raise MppsError(DUPLICATE_SOP_INSTANCE, _DUPLICATE)
    pps = PerformedProcedureStep(
        sop_instance_uid=sop_instance_uid,
        calling_ae_title=calling_ae_title[:16],
        dataset=request.dataset_json,
        **request.fields,
    )
    try:
        with transaction.atomic():
            pps.save()
    except IntegrityError as exc:  # a concurrent N-CREATE of the same UID won the race
        raise MppsError(DUPLICATE_SOP_INSTANCE, _DUPLICATE) from exc
    _store_series(pps, request.series)
    steps, notes = _match_steps(request.step_refs, patient_id=pps.patient_id)
    StepLink.objects.bulk_create([StepLink(pps=pps, step=step) for step in steps])
    notes += _sync_steps(steps, actor=actor, pps=pps, strict=False)
    _set_reconciliation(pps, linked=bool(steps), notes=notes)
    pps.save(update_fields=["reconciliation", "reconciliation_note"])
    audit.record(
        actor,
        "pps.create",
        pps,
        after=audit.snapshot(pps, _AUDIT_FIELDS),
        detail=pps.reconciliation_note,
    )
    signals.pps_received.send(
        PerformedProcedureStep,
        pps=pps,
        operation="N-CREATE",
        attributes=request.dataset_json,
        actor=actor,
    )
    if pps.is_exception:
        logger.warning("PPS %s from %s is an exception: %s", pps.pps_id, actor.name, notes)
    return pps


# --- N-SET -------------------------------------------------------------------------------------


@transaction.atomic
def pps_update(
    *, sop_instance_uid: str, dataset: Dataset, actor: Actor
) -> tuple[PerformedProcedureStep, tuple[int, ...]]:
    """Apply an N-SET; a final status completes, discontinues or reschedules the linked steps.

    Returns the PPS and the tags that were ignored (attributes only the N-CREATE may set, sent
    with another value): the adapter answers those with the Warning 0x0107.
    """
    pps = PerformedProcedureStep.objects.select_for_update().filter(
        sop_instance_uid=sop_instance_uid
    ).first()
    if pps is None:
        raise MppsError(NO_SUCH_SOP_INSTANCE, "No PPS has this SOP Instance UID")
    if pps.is_final:
        # PS3.4 F.7.2.2: a COMPLETED or DISCONTINUED PPS may no longer be updated.
        raise MppsError(
            PROCESSING_FAILURE,
            f"PPS is {pps.status}: it may no longer be updated",
            error_id=ERROR_ID_NO_LONGER_UPDATABLE,
        )
    if "SpecificCharacterSet" not in dataset and pps.character_set:
        # Modalities often leave (0008,0005) out of the N-SET; their text is still in the
        # character set they declared at N-CREATE.
        declared = pps.character_set.split("\\")
        dataset.SpecificCharacterSet = declared
        # pydicom decodes with the character set it read (none): make it the declared one.
        implicit_vr, little_endian = dataset.original_encoding
        if implicit_vr is not None:
            dataset.set_original_encoding(implicit_vr, little_endian, convert_encodings(declared))
    request = validate_set(
        dataset,
        stored_json=pps.dataset,
        stored_ended_at=pps.ended_at,
        stored_series_count=pps.series.count(),
    )
    before = audit.snapshot(pps, _AUDIT_FIELDS)
    previous_status = pps.status
    for name, value in request.fields.items():
        setattr(pps, name, value)
    # A sequence in an N-SET replaces the stored one whole (PS3.4 F.7.2.2).
    pps.dataset = {**pps.dataset, **request.dataset_json}
    pps.save()
    if request.series is not None:
        pps.series.all().delete()
        _store_series(pps, request.series)
    if pps.status != previous_status:
        steps = list(pps.steps.all())
        notes = _sync_steps(steps, actor=actor, pps=pps, strict=False)
        if notes:
            # Back on the exception list, even if staff had linked it before.
            pps.reconciliation = Reconciliation.CONFLICT
            pps.reconciliation_note = _join(pps.reconciliation_note, *notes)
            pps.save(update_fields=["reconciliation", "reconciliation_note"])
    audit.record(
        actor, "pps.update", pps, before=before, after=audit.snapshot(pps, _AUDIT_FIELDS)
    )
    signals.pps_received.send(
        PerformedProcedureStep,
        pps=pps,
        operation="N-SET",
        attributes=request.dataset_json,
        actor=actor,
    )
    return pps, request.ignored


# --- reconciliation of exceptions ---------------------------------------------------------------


@transaction.atomic
def pps_link(
    *,
    pps: PerformedProcedureStep,
    steps: Sequence[ScheduledProcedureStep],
    actor: Actor,
    note: str = "",
) -> PerformedProcedureStep:
    """Tie a PPS to scheduled steps chosen by staff; the steps follow the PPS's status.

    Refused (nothing changed) when a step cannot follow, e.g. a cancelled step: staff then pick
    another step, or re-order.
    """
    pps = PerformedProcedureStep.objects.select_for_update().get(pk=pps.pk)
    if not steps:
        raise DomainError("choose at least one scheduled step to link the PPS to")
    linked = set(pps.links.values_list("step_id", flat=True))
    new_steps = [step for step in steps if step.pk not in linked]
    if not new_steps:
        raise DomainError(f"PPS {pps.pps_id} is already linked to these steps")
    user = actor.user if getattr(actor.user, "pk", None) else None
    StepLink.objects.bulk_create(
        [
            StepLink(pps=pps, step=step, source=StepLink.Source.STAFF, linked_by=user)
            for step in new_steps
        ]
    )
    _sync_steps(new_steps, actor=actor, pps=pps, strict=True)
    before = audit.snapshot(pps, _AUDIT_FIELDS)
    if pps.is_exception:
        pps.reconciliation = Reconciliation.LINKED
    sps_ids = ", ".join(step.sps_id for step in new_steps)
    pps.reconciliation_note = _join(
        pps.reconciliation_note, f"linked to {sps_ids} by {actor.name}", note
    )
    pps.save(update_fields=["reconciliation", "reconciliation_note", "updated_at"])
    audit.record(
        actor,
        "pps.link",
        pps,
        before=before,
        after=audit.snapshot(pps, _AUDIT_FIELDS),
        detail=f"{sps_ids}{': ' + note if note else ''}",
    )
    signals.pps_linked.send(PerformedProcedureStep, pps=pps, steps=new_steps, actor=actor)
    return pps


def linkable_steps(
    pps: PerformedProcedureStep, order: Order
) -> list[ScheduledProcedureStep]:
    """The steps of ``order`` a PPS can be linked to: live ones, of its modality when possible."""
    live = list(
        ScheduledProcedureStep.objects.filter(requested_procedure__order=order)
        .exclude(status__in=[S.CANCELED, S.DISCONTINUED, S.UNSCHEDULED])
        .exclude(pps_links__pps=pps)
        .order_by("pk")
    )
    same_modality = [step for step in live if step.modality == pps.modality]
    return same_modality or live


def pps_link_order(
    *, pps: PerformedProcedureStep, order: Order, actor: Actor, note: str = ""
) -> PerformedProcedureStep:
    """Tie a PPS to an order: to its live steps of the PPS's modality (else all live steps)."""
    steps = linkable_steps(pps, order)
    if not steps:
        raise DomainError(
            f"order {order.accession_number} has no scheduled step this PPS can be linked to"
        )
    return pps_link(pps=pps, steps=steps, actor=actor, note=note)


@transaction.atomic
def pps_dismiss(
    *, pps: PerformedProcedureStep, actor: Actor, reason: str
) -> PerformedProcedureStep:
    """Close an exception without linking it (a test, QA or phantom acquisition)."""
    pps = PerformedProcedureStep.objects.select_for_update().get(pk=pps.pk)
    if pps.reconciliation not in EXCEPTION_STATES:
        raise DomainError(f"PPS {pps.pps_id} is not an exception")
    if not reason.strip():
        raise DomainError("say why this PPS belongs to no order")
    before = audit.snapshot(pps, _AUDIT_FIELDS)
    pps.reconciliation = Reconciliation.DISMISSED
    pps.reconciliation_note = _join(pps.reconciliation_note, f"dismissed by {actor.name}: {reason}")
    pps.save(update_fields=["reconciliation", "reconciliation_note", "updated_at"])
    audit.record(
        actor,
        "pps.dismiss",
        pps,
        before=before,
        after=audit.snapshot(pps, _AUDIT_FIELDS),
        detail=reason,
    )
    return pps


# --- helpers -----------------------------------------------------------------------------------


def _store_series(pps: PerformedProcedureStep, series: list[SeriesInfo]) -> None:
    PerformedSeries.objects.bulk_create(
        [
            PerformedSeries(
                pps=pps,
                series_instance_uid=item.series_instance_uid,
                protocol_name=item.protocol_name,
                description=item.description,
                performing_physician=item.performing_physician,
                operators=item.operators,
                retrieve_ae_title=item.retrieve_ae_title,
                referenced_images=item.referenced_images,
                referenced_non_images=item.referenced_non_images,
            )
            for item in series
        ]
    )


def _match_steps(
    refs: Sequence[StepRef], *, patient_id: str
) -> tuple[list[ScheduledProcedureStep], list[str]]:
    """The steps the Scheduled Step Attributes items name, and why the others matched nothing."""
    steps: dict[int, ScheduledProcedureStep] = {}
    notes: list[str] = []
    for number, ref in enumerate(refs, start=1):
        step, problem = _match_one(ref, patient_id=patient_id)
        if step is not None:
            steps[step.pk] = step
        else:
            notes.append(f"item {number}: {problem}")
    return sorted(steps.values(), key=lambda s: s.pk), notes


def _match_one(ref: StepRef, *, patient_id: str) -> tuple[ScheduledProcedureStep | None, str]:
    """Find the step one item names, by the most specific identifier it carries.

    SPS ID, then Requested Procedure ID, then Accession Number, then Study Instance UID. Any other
    identifier the item carries must agree (a typo in one of them makes it an exception rather
    than a wrong link); so must the Patient ID when both sides have one. The Study Instance UID is
    not cross-checked: some modalities are configured to generate their own.
    """
    steps = ScheduledProcedureStep.objects.select_related(
        "requested_procedure__order__patient"
    ).order_by("pk")
    if ref.sps_id:
        candidates = list(steps.filter(sps_id=ref.sps_id))
        named = f"SPS ID {ref.sps_id}"
    elif ref.requested_procedure_id:
        candidates = list(
            steps.filter(requested_procedure__requested_procedure_id=ref.requested_procedure_id)
        )
        named = f"requested procedure {ref.requested_procedure_id}"
    elif ref.accession_number:
        candidates = list(
            steps.filter(requested_procedure__order__accession_number=ref.accession_number)
            .exclude(status=S.CANCELED)
        )
        named = f"accession {ref.accession_number}"
    else:
        candidates = list(
            steps.filter(requested_procedure__study_instance_uid=ref.study_instance_uid)
        )
        named = f"study {ref.study_instance_uid}"
    if not candidates:
        return None, f"no scheduled step has {named}"
    if len(candidates) > 1:
        return None, f"{named} names {len(candidates)} steps; link the PPS by hand"
    step = candidates[0]
    procedure = step.requested_procedure
    order = procedure.order
    if ref.accession_number and ref.accession_number != order.accession_number:
        return None, (
            f"{named} belongs to accession {order.accession_number}, not {ref.accession_number}"
        )
    rp_id = procedure.requested_procedure_id
    if ref.requested_procedure_id and ref.requested_procedure_id != rp_id:
        return None, (
            f"{named} belongs to requested procedure {procedure.requested_procedure_id}, "
            f"not {ref.requested_procedure_id}"
        )
    if patient_id and patient_id != order.patient.patient_id:
        return None, (
            f"{named} is for patient {order.patient.patient_id}, the modality sent {patient_id}"
        )
    return step, ""


def _target_status(
    step: ScheduledProcedureStep,
) -> tuple[str | None, PerformedProcedureStep | None]:
    """What the step's PPS imply for it, and the PPS whose reason explains it."""
    performed = list(
        PerformedProcedureStep.objects.filter(links__step=step).order_by("started_at", "pk")
    )
    counting = [
        p
        for p in performed
        if not (
            p.status == PPSStatus.DISCONTINUED
            and is_incorrect_worklist_entry(p.discontinuation_reason)
        )
    ]
    if not counting:
        wrong_entry = performed[-1] if performed else None
        return (S.SCHEDULED, wrong_entry) if wrong_entry else (None, None)
    running = [p for p in counting if p.status == PPSStatus.IN_PROGRESS]
    if running:
        return S.STARTED, running[0]
    completed = [p for p in counting if p.status == PPSStatus.COMPLETED]
    if completed:
        return S.COMPLETED, completed[-1]
    return S.DISCONTINUED, counting[-1]


def _path(current: str, target: str) -> list[str]:
    """The transitions that take a step from ``current`` to ``target`` ([] when none apply)."""
    if current == target:
        return []
    if current in STARTABLE_STEP_STATUSES:
        if target == S.STARTED:
            return [S.STARTED]
        if target in (S.COMPLETED, S.DISCONTINUED):
            return [S.STARTED, target]
        return []  # SCHEDULED: the step was never started by this PPS
    if current == S.STARTED and target in (S.COMPLETED, S.DISCONTINUED, S.SCHEDULED):
        return [target]
    return [target]  # refused below by the state machine (e.g. a cancelled step)


def _reason(pps: PerformedProcedureStep, target: str) -> str:
    source = f"MPPS {pps.pps_id} from {pps.station_ae_title}"
    code = pps.discontinuation_reason
    if target in (S.DISCONTINUED, S.SCHEDULED) and code:
        meaning = code.get("meaning") or "no meaning given"
        return f"{source}: discontinued, {meaning} ({code['value']}, {code.get('scheme', '')})"
    return source


def _sync_steps(
    steps: Sequence[ScheduledProcedureStep],
    *,
    actor: Actor,
    pps: PerformedProcedureStep,
    strict: bool,
) -> list[str]:
    """Move each step to the status its PPS imply; return notes on steps that could not follow.

    Steps are locked in primary-key order so two PPS covering the same steps cannot deadlock.
    With ``strict`` a step that cannot follow raises ``StepConflict`` (staff linking); from a
    modality it becomes a note and the PPS an exception, since the acquisition happened anyway.
    """
    notes: list[str] = []
    for step in ScheduledProcedureStep.objects.select_for_update().filter(
        pk__in=[s.pk for s in steps]
    ).order_by("pk"):
        if not mpps_moves_steps(progress_mode(_station_of(step))):
            # The device's steps follow its images (mpps.forwarding.progress): the PPS is kept,
            # linked and forwarded, but does not move the step.
            continue
        target, cause = _target_status(step)
        if target is None or step.status == S.COMPLETED:
            # A PPS appended to a completed step (more images later) leaves it completed.
            continue
        for to in _path(step.status, target):
            if to not in allowed_step_transitions(step.status):
                note = (
                    f"step {step.sps_id} is {step.get_status_display().lower()} and cannot "
                    f"become {StepStatus(to).label.lower()}"
                )
                if strict:
                    raise StepConflict(note)
                notes.append(note)
                break
            reason_code = INCORRECT_WORKLIST_ENTRY if to == S.SCHEDULED else None
            step = worklist_services.step_transition(
                step=step,
                to=to,
                actor=actor,
                reason=_reason(cause or pps, to),
                reason_code=reason_code,
            )
    return notes


def _station_of(step: ScheduledProcedureStep) -> Device | None:
    # Not select_related into the locking query: FOR UPDATE would lock the device row too.
    return Device.objects.filter(pk=step.station_id).first() if step.station_id else None


def _set_reconciliation(pps: PerformedProcedureStep, *, linked: bool, notes: list[str]) -> None:
    if not linked:
        pps.reconciliation = Reconciliation.UNMATCHED
    elif notes:
        pps.reconciliation = Reconciliation.CONFLICT
    else:
        pps.reconciliation = Reconciliation.MATCHED
    pps.reconciliation_note = "; ".join(notes)


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)
