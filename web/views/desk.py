"""The day list with check-in (arrived / ready / no-show, each undoable the same day) and the
live worklist board."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mpps.forwarding import selectors as forwarding
from ris import accounts
from web import live, selectors
from web.access import ANY_ROLE, CHECK_IN, role_required
from web.errors import domain_message
from web.forms import CheckInForm, NoShowForm
from web.views.common import actor, day_param, modality_param, safe_next
from worklist import services
from worklist.errors import DomainError
from worklist.models import ScheduledProcedureStep, StepStatus
from worklist.states import CHECK_IN_LIST_STATUSES, allowed_step_transitions


def checkin_actions(step: ScheduledProcedureStep) -> list[str]:
    """The check-in buttons that make sense for a step in its current status.

    "undo" is offered for a check-in or no-show status; the service decides whether today's
    trail really holds a click to take back (and says so when it does not).
    """
    allowed = allowed_step_transitions(step.status)
    actions = []
    if StepStatus.ARRIVED in allowed and step.status != StepStatus.ARRIVED:
        actions.append("arrived")
    if StepStatus.READY in allowed and step.status != StepStatus.READY:
        actions.append("ready")
    if step.status == StepStatus.SCHEDULED:
        actions.append("no_show")
    if step.status in (StepStatus.ARRIVED, StepStatus.READY) or services.is_no_show(step):
        actions.append("undo")
    return actions


#: The id of the check-in list's live region.
DAY_TABLE = "day-table"


def _rows(steps) -> list[tuple[ScheduledProcedureStep, list[str]]]:
    return [(step, checkin_actions(step)) for step in steps]


@role_required(*ANY_ROLE)
def day_list(request):
    """The day's exams with their check-in buttons; the table is a live region (web/live.py)
    that follows MPPS, HL7 and other desks within a few seconds."""
    day = day_param(request)
    modality = modality_param(request)
    start, end = selectors.day_bounds(day)
    listed = selectors.steps_between(start, end, modality=modality, statuses=CHECK_IN_LIST_STATUSES)
    version = live.steps_version(listed)
    unchanged = live.not_modified(request, version)
    if unchanged is not None:
        return unchanged
    context = {
        "day": day,
        "modality": modality,
        "rows": _rows(forwarding.with_images(listed)),
        **live.context(request, region=DAY_TABLE, version=version),
    }
    if live.is_poll(request, DAY_TABLE):
        return render(request, "web/_day_table.html", context)
    context["modalities"] = selectors.modalities_in_use()
    return render(request, "web/day_list.html", context)


def _step_for_row(pk: int) -> ScheduledProcedureStep:
    return get_object_or_404(
        forwarding.with_images(
            ScheduledProcedureStep.objects.select_related(
                "requested_procedure__order__patient", "station"
            )
        ),
        pk=pk,
    )


def _answer(request, step: ScheduledProcedureStep, *, error: str = "", done: str = ""):
    """The updated row for htmx, else back to the list with the outcome as a message."""
    if request.htmx:
        step = _step_for_row(step.pk)  # the current state, also after a refused (stale) click
        return render(
            request,
            "web/_day_row.html",
            {"step": step, "actions": checkin_actions(step), "error": error, "done": done},
        )
    if error:
        messages.error(request, error)
    elif done:
        messages.success(request, done)
    return redirect(safe_next(request, reverse("web:day_list")))


def _done(step: ScheduledProcedureStep) -> str:
    return _("%(patient)s: %(status)s.") % {
        "patient": step.requested_procedure.order.patient.person_name.display(),
        "status": step.get_status_display(),
    }


@role_required(*ANY_ROLE)
def checkin_row(request, pk: int):
    """One row of the check-in list as it is now (the "keep" of a no-show confirmation)."""
    step = _step_for_row(pk)
    return render(request, "web/_day_row.html", {"step": step, "actions": checkin_actions(step)})


@require_POST
@role_required(*CHECK_IN)
def checkin(request, pk: int):
    step = get_object_or_404(ScheduledProcedureStep, pk=pk)
    form = CheckInForm(request.POST)
    if not form.is_valid():
        return _answer(request, step, error=_("Unknown check-in action."))
    try:
        step = services.step_transition(
            step=step, to=CheckInForm.ACTIONS[form.cleaned_data["action"]], actor=actor(request)
        )
    except DomainError as exc:
        return _answer(request, step, error=domain_message(exc))
    return _answer(request, step, done=_done(step))


@role_required(*CHECK_IN)
def no_show(request, pk: int):
    """Confirm a no-show with a reason (GET: the question, in the row or as a page; POST: do it)."""
    step = _step_for_row(pk)
    form = NoShowForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            step = services.step_no_show(
                step=step, actor=actor(request), reason_code=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            return _answer(request, step, error=domain_message(exc))
        return _answer(request, step, done=_done(step))
    template = "web/_no_show_row.html" if request.htmx else "web/step_no_show.html"
    return render(request, template, {"step": step, "form": form})


@require_POST
@role_required(*CHECK_IN)
def undo(request, pk: int):
    """Take back today's check-in or no-show of this step (``services.step_undo``)."""
    step = get_object_or_404(ScheduledProcedureStep, pk=pk)
    try:
        step = services.step_undo(step=step, actor=actor(request))
    except DomainError as exc:
        return _answer(request, step, error=domain_message(exc))
    return _answer(request, step, done=_("Undone: %(patient)s is %(status)s again.") % {
        "patient": step.requested_procedure.order.patient.person_name.display(),
        "status": step.get_status_display().lower(),
    })


@role_required(*ANY_ROLE)
def board(request, modality: str = ""):
    """What the modality will see on its worklist, with live status; the page polls itself.

    Without a modality in the URL the board opens on the one this user showed last (kept on the
    server, so it follows the user to another workstation), else on the first with work today;
    a modality no active station has is 404, not an empty board.
    """
    modalities = selectors.modalities_in_use()
    today = timezone.localdate()
    start, end = selectors.day_bounds(today)
    remembered = "" if request.htmx else accounts.board_modality(request.user)
    if modality:
        modality = modality.upper()
        if modality not in modalities:
            raise Http404("no active station of this modality")
    else:
        modality = modality_param(request)
        if modality not in modalities:
            modality = remembered if remembered in modalities else ""
        if not modality and modalities:
            busy = selectors.modalities_with_steps(start, end, statuses=selectors.BOARD_STATUSES)
            modality = next((m for m in modalities if m in busy), modalities[0])
    steps = list(
        forwarding.with_images(
            selectors.steps_between(
                start, end, modality=modality, statuses=selectors.BOARD_STATUSES
            )
        )
    )
    context = {
        "modality": modality,
        "modalities": modalities,
        "steps": steps,
        "now": timezone.now(),
    }
    template = "web/_board_table.html" if request.htmx else "web/board.html"
    if modality and not request.htmx and modality != remembered:
        accounts.board_modality_set(user=request.user, modality=modality)
    return render(request, template, context)
