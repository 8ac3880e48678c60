"""The day list with check-in (arrived / ready / no-show) and the live worklist board."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from mpps.forwarding import selectors as forwarding
from web import selectors
from web.access import ANY_ROLE, CHECK_IN, role_required
from web.forms import CheckInForm
from web.views.common import actor, day_param, modality_param, safe_next
from worklist import services
from worklist.errors import DomainError
from worklist.models import ScheduledProcedureStep, StepStatus
from worklist.states import allowed_step_transitions

#: Reason stored on a step cancelled because the patient did not come.
NO_SHOW_REASON = "no-show"


def checkin_actions(step: ScheduledProcedureStep) -> list[str]:
    """The check-in buttons that make sense for a step in its current status."""
    allowed = allowed_step_transitions(step.status)
    actions = []
    if StepStatus.ARRIVED in allowed and step.status != StepStatus.ARRIVED:
        actions.append("arrived")
    if StepStatus.READY in allowed and step.status != StepStatus.READY:
        actions.append("ready")
    if step.status == StepStatus.SCHEDULED:
        actions.append("no_show")
    return actions


def _rows(steps) -> list[tuple[ScheduledProcedureStep, list[str]]]:
    return [(step, checkin_actions(step)) for step in steps]


@role_required(*ANY_ROLE)
def day_list(request):
    day = day_param(request)
    modality = modality_param(request)
    start, end = selectors.day_bounds(day)
    steps = forwarding.with_images(
        selectors.steps_between(start, end, modality=modality, statuses=selectors.BOARD_STATUSES)
    )
    return render(
        request,
        "web/day_list.html",
        {
            "day": day,
            "modality": modality,
            "modalities": selectors.modalities_in_use(),
            "rows": _rows(steps),
        },
    )


@require_POST
@role_required(*CHECK_IN)
def checkin(request, pk: int):
    step = get_object_or_404(ScheduledProcedureStep, pk=pk)
    form = CheckInForm(request.POST)
    error = ""
    if not form.is_valid():
        error = _("Unknown check-in action.")
    else:
        action = form.cleaned_data["action"]
        try:
            step = services.step_transition(
                step=step,
                to=CheckInForm.ACTIONS[action],
                actor=actor(request),
                reason=NO_SHOW_REASON if action == "no_show" else "",
            )
        except DomainError as exc:
            error = exc.message
    if request.htmx:
        step = forwarding.with_images(
            ScheduledProcedureStep.objects.select_related(
                "requested_procedure__order__patient", "station"
            )
        ).get(pk=step.pk)
        return render(
            request,
            "web/_day_row.html",
            {"step": step, "actions": checkin_actions(step), "error": error},
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, _("%(patient)s: %(status)s.") % {
            "patient": step.requested_procedure.order.patient.person_name.display(),
            "status": step.get_status_display(),
        })
    return redirect(safe_next(request, reverse("web:day_list")))


@role_required(*ANY_ROLE)
def board(request, modality: str = ""):
    """What the modality will see on its worklist, with live status; the page polls itself."""
    modalities = selectors.modalities_in_use()
    modality = (modality or modality_param(request) or (modalities[0] if modalities else ""))
    start, end = selectors.day_bounds(timezone.localdate())
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
    return render(request, template, context)
