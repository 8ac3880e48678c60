"""Orders: create from the catalogue, edit, cancel with a reason, and the detail page."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from web import integrations, live, selectors
from web.access import ANY_ROLE, FRONT_DESK, role_required
from web.audit_text import audit_lines
from web.errors import domain_message, warning_message
from web.forms import CancelOrderForm, EditOrderForm, NewOrderForm, add_domain_error
from web.views.common import actor, int_param
from worklist import scheduling, services
from worklist.errors import DomainError
from worklist.models import Order, Patient
from worklist.services import ProcedureRequest
from worklist.states import CLOSED_ORDER_STATUSES, IMAGED_STEP_STATUSES, MOVABLE_STEP_STATUSES

#: The id of the order page's live region.
ORDER_BODY = "order-body"


@role_required(*FRONT_DESK)
def order_create(request):
    patient_id = int_param(request, "patient")
    if patient_id is None:
        messages.info(request, _("Find or register the patient first, then create the order."))
        return redirect("web:patient_list")
    patient = get_object_or_404(Patient, pk=patient_id)
    form = NewOrderForm(request.POST or None)
    warnings: list[str] = []
    if request.method == "POST" and form.is_valid():
        warnings = _new_order_warnings(patient, form.cleaned_data)
    if request.method == "POST" and form.is_valid() and not warnings:
        data = form.cleaned_data
        try:
            order = services.order_create(
                patient=patient,
                procedures=[
                    ProcedureRequest(
                        data["procedure_type"],
                        scheduled_start=data.get("start"),
                        station=data.get("station"),
                        outside_hours_ok=data["confirm_warnings"],
                    )
                ],
                actor=actor(request),
                priority=data["priority"],
                referring_physician=data["referring_physician"],
                requesting_physician=data["requesting_physician"],
                reason=data["reason"],
                comments=data["comments"],
                refuse_past=True,
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(
                request, _("Order %(accession)s created.") % {"accession": order.accession_number}
            )
            return redirect("web:order_detail", pk=order.pk)
    return render(
        request, "web/order_form.html", {"form": form, "patient": patient, "warnings": warnings}
    )


def _new_order_warnings(patient: Patient, data: dict) -> list[str]:
    """The warnings of a new order booked straight into a slot (as for ``calendar.book``)."""
    if data.get("confirm_warnings") or data.get("start") is None or data.get("station") is None:
        return []
    found = scheduling.booking_warnings(
        station=data["station"],
        start=data["start"],
        minutes=data["procedure_type"].default_duration_minutes,
        priority=data["priority"],
        patient=patient,
    )
    return [warning_message(warning) for warning in found]


@role_required(*ANY_ROLE)
def order_detail(request, pk: int):
    """The order with its steps, performed steps, messages and audit trail; a live region
    (web/live.py), so statuses and buttons follow MPPS and HL7 while the page is open."""
    order = get_object_or_404(Order.objects.select_related("patient", "visit"), pk=pk)
    version = live.order_version(order)
    unchanged = live.not_modified(request, version)
    if unchanged is not None:
        return unchanged
    procedures = selectors.order_procedures(order)
    steps = [step for proc in procedures for step in proc.steps.all()]
    poll = live.is_poll(request, ORDER_BODY)
    return render(
        request,
        "web/_order_body.html" if poll else "web/order_detail.html",
        {
            **live.context(request, region=ORDER_BODY, version=version),
            "order": order,
            "procedures": procedures,
            "steps": steps,
            "movable": MOVABLE_STEP_STATUSES,
            "imaged": IMAGED_STEP_STATUSES,
            "closed": order.status in CLOSED_ORDER_STATUSES,
            "cancel_undoable": services.order_cancel_undoable(order),
            "audit": audit_lines(selectors.order_audit_trail(order, procedures)),
            "integration": integrations.order_panels(order, steps),
        },
    )


@role_required(*FRONT_DESK)
def order_edit(request, pk: int):
    order = get_object_or_404(Order.objects.select_related("patient"), pk=pk)
    initial = {
        name: getattr(order, name)
        for name in ("priority", "referring_physician", "requesting_physician", "reason",
                     "comments")
    }
    form = EditOrderForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.order_update(order=order, actor=actor(request), **form.cleaned_data)
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Order saved."))
            return redirect("web:order_detail", pk=order.pk)
    return render(request, "web/order_edit.html", {"form": form, "order": order})


@role_required(*FRONT_DESK)
def order_cancel(request, pk: int):
    order = get_object_or_404(Order.objects.select_related("patient"), pk=pk)
    form = CancelOrderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.order_cancel(
                order=order, actor=actor(request), reason_code=form.cleaned_data["reason"]
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(
                request, _("Order %(accession)s cancelled.") % {"accession": order.accession_number}
            )
            return redirect("web:order_detail", pk=order.pk)
    return render(request, "web/order_cancel.html", {"form": form, "order": order})


@require_POST
@role_required(*FRONT_DESK)
def order_cancel_undo(request, pk: int):
    """Take back today's cancel of this order by the desk (``services.order_cancel_undo``):
    the same role that may cancel may undo it."""
    order = get_object_or_404(Order, pk=pk)
    try:
        order = services.order_cancel_undo(order=order, actor=actor(request))
    except DomainError as exc:
        messages.error(request, domain_message(exc))
    else:
        messages.success(
            request,
            _("Cancel undone: order %(accession)s is %(status)s again.")
            % {"accession": order.accession_number, "status": order.get_status_display().lower()},
        )
    return redirect("web:order_detail", pk=order.pk)
