"""Integration monitors: MPPS exceptions, the HL7 message log, the outbound queue.

Each action calls the owning module's service: ``mpps.services.pps_link_order`` /
``pps_dismiss``, ``ris.hl7.handler.reprocess`` and ``ris.outbound_queue.retry`` /
``supersede``.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import OuterRef, QuerySet, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from mpps import selectors as mpps_selectors
from mpps import services as mpps_services
from mpps.models import PerformedProcedureStep
from ris import outbound_queue as queue
from ris.hl7 import charsets
from ris.hl7 import handler as hl7_handler
from ris.models import InboundMessage, OutboundJob
from web.access import ADMIN, TECHNOLOGIST, role_required
from web.errors import domain_message
from web.templatetags.ris_web import hl7_condition
from web.views.common import actor
from worklist.errors import DomainError
from worklist.models import Order

PAGE_SIZE = 50


# --- MPPS exceptions --------------------------------------------------------------------------


class LinkForm(forms.Form):
    accession_number = forms.CharField(label=gettext_lazy("Accession number"), max_length=16)
    note = forms.CharField(label=gettext_lazy("Note"), max_length=200, required=False)


class DismissForm(forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=200)


@role_required(*TECHNOLOGIST)
def mpps_exceptions(request):
    page = Paginator(mpps_selectors.open_exceptions(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/mpps_exceptions.html", {"page": page})


@require_POST
@role_required(*TECHNOLOGIST)
def mpps_link(request, pk: int):
    pps = get_object_or_404(PerformedProcedureStep, pk=pk)
    form = LinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the accession number of the order."))
        return redirect("web:mpps_exceptions")
    order = Order.objects.filter(accession_number=form.cleaned_data["accession_number"]).first()
    if order is None:
        messages.error(request, _("No order has accession number %(accession)s.") % {
            "accession": form.cleaned_data["accession_number"]})
        return redirect("web:mpps_exceptions")
    try:
        mpps_services.pps_link_order(
            pps=pps, order=order, actor=actor(request), note=form.cleaned_data["note"]
        )
    except DomainError as exc:
        messages.error(request, domain_message(exc))
    else:
        messages.success(request, _("PPS %(pps)s linked to order %(accession)s.") % {
            "pps": pps.pps_id, "accession": order.accession_number})
    return redirect("web:mpps_exceptions")


@require_POST
@role_required(*TECHNOLOGIST)
def mpps_dismiss(request, pk: int):
    pps = get_object_or_404(PerformedProcedureStep, pk=pk)
    form = DismissForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Say why this performed step belongs to no order."))
        return redirect("web:mpps_exceptions")
    try:
        mpps_services.pps_dismiss(pps=pps, actor=actor(request),
                                  reason=form.cleaned_data["reason"])
    except DomainError as exc:
        messages.error(request, domain_message(exc))
    else:
        messages.success(request, _("PPS %(pps)s dismissed.") % {"pps": pps.pps_id})
    return redirect("web:mpps_exceptions")


# --- HL7 message log --------------------------------------------------------------------------


class MessageFilter(forms.Form):
    message_type = forms.CharField(label=gettext_lazy("Type"), max_length=32, required=False)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        choices=[("", "—"), *InboundMessage.Status.choices],
        required=False,
    )
    sender = forms.CharField(label=gettext_lazy("Sender"), max_length=140, required=False)
    date = forms.DateField(label=gettext_lazy("Date"), required=False,
                           widget=forms.DateInput(attrs={"type": "date"}))
    patient = forms.CharField(label=gettext_lazy("Patient ID"), max_length=64, required=False)


@role_required(*ADMIN)
def hl7_messages(request):
    form = MessageFilter(request.GET or None)
    query = InboundMessage.objects.select_related("patient", "order").defer("raw", "ack")
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["message_type"]:
            query = query.filter(message_type__istartswith=data["message_type"])
        if data["status"]:
            query = query.filter(status=data["status"])
        if data["sender"]:
            query = query.filter(sender__icontains=data["sender"])
        if data["date"]:
            from web.selectors import day_bounds

            start, end = day_bounds(data["date"])
            query = query.filter(received_at__gte=start, received_at__lt=end)
        if data["patient"]:
            query = query.filter(patient__patient_id=data["patient"])
    page = Paginator(query.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/hl7_messages.html", {"form": form, "page": page})


def _segments(text: str) -> list[tuple[str, list[str]]]:
    """ER7 text laid out as (segment name, fields) rows for reading."""
    rows = []
    for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r"):
        if line.strip():
            fields = line.split("|")
            rows.append((fields[0], fields[1:]))
    return rows


@role_required(*ADMIN)
def hl7_message(request, pk: int):
    message = get_object_or_404(InboundMessage.objects.select_related("patient", "order"), pk=pk)
    text = charsets.stored_text(message.raw, message.charset)
    ack = charsets.ack_text(message.ack)
    return render(
        request,
        "web/hl7_message.html",
        {"message": message, "segments": _segments(text), "ack": _segments(ack),
         "can_reprocess": message.status == InboundMessage.Status.ERROR},
    )


@require_POST
@role_required(*ADMIN)
def hl7_reprocess(request, pk: int):
    message = get_object_or_404(InboundMessage, pk=pk)
    try:
        message = hl7_handler.reprocess(message, actor=actor(request))
    except ValueError:
        messages.error(request, _("Only a message in error can be reprocessed."))
    else:
        if message.status == InboundMessage.Status.PROCESSED:
            messages.success(request, _("Message reprocessed."))
        else:
            messages.error(request, _("Reprocessing failed again: %(error)s") % {
                "error": hl7_condition(message.error_code)})
    return redirect("web:hl7_message", pk=pk)


# --- outbound queue ---------------------------------------------------------------------------


class SupersedeForm(forms.Form):
    job = forms.IntegerField(min_value=1)
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=200)


def _jobs_with_successor(states) -> QuerySet[OutboundJob]:
    """Jobs with ``next_id``: the later job of the same order that may supersede each one."""
    later = (
        OutboundJob.objects.filter(ordering_key=OuterRef("ordering_key"), id__gt=OuterRef("id"))
        .exclude(ordering_key="")
        .order_by("id")
        .values("id")[:1]
    )
    return (
        OutboundJob.objects.filter(state__in=states)
        .annotate(next_id=Subquery(later))
        .defer("payload")
        .order_by("-id")
    )


@role_required(*ADMIN)
def outbound_queue(request):
    state = request.GET.get("state") or ""
    states = [OutboundJob.State.PENDING, OutboundJob.State.IN_PROGRESS, OutboundJob.State.FAILED]
    if state in OutboundJob.State.values:
        states = [state]
    page = Paginator(_jobs_with_successor(states), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/outbound_queue.html",
        {
            "page": page,
            "state": state,
            "states": OutboundJob.State.choices,
            "destinations": queue.destination_status(),
            "supersedable": queue.SUPERSEDABLE_STATES,
        },
    )


@require_POST
@role_required(*ADMIN)
def outbound_retry(request):
    ids = [int(v) for v in request.POST.getlist("job") if v.isdigit()]
    count = queue.retry(ids if ids else None, actor=actor(request))
    messages.success(request, _("%(count)s job(s) queued again.") % {"count": count})
    return redirect("web:outbound_queue")


@require_POST
@role_required(*ADMIN)
def outbound_supersede(request):
    """Mark one job superseded by a later message (``ris.outbound_queue.supersede``)."""
    form = SupersedeForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Say why this message is no longer to be sent."))
        return redirect("web:outbound_queue")
    job_id = form.cleaned_data["job"]
    count = queue.supersede([job_id], actor=actor(request), reason=form.cleaned_data["reason"])
    if count:
        messages.success(request, _("Job %(job)s superseded: it will not be sent.") % {
            "job": job_id})
    else:
        messages.error(request, _("Only waiting or failed jobs can be superseded."))
    return redirect("web:outbound_queue")
