"""The exceptions work list: one screen for performed work that needs staff (``mpps.exceptions``).

Each row links to where it is resolved (the MPPS exceptions page links or dismisses a PPS, the
order page shows a step without images); an unmatched gateway study is linked here to its order
(``mpps.forwarding.services.study_link``: re-coerced with reason CORRECT and forwarded again).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from mpps import exceptions as selectors
from mpps.forwarding import services as forwarding
from web.access import TECHNOLOGIST, role_required
from web.views.common import actor
from worklist.models import Modality, Order

PAGE_SIZE = 50

#: The kinds as staff read them (the screen's tabs and the dashboard's tiles).
KIND_LABELS = {
    "gateway": _("Unmatched studies at the gateway"),
    "pps": _("MPPS exceptions"),
    "pacs": _("Studies at the PACS with no order"),
    "no_images": _("Completed by MPPS, no images"),
}


class ExceptionFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=[("", _("All")), *KIND_LABELS.items()]
    )
    since = forms.DateField(
        label=_("Since"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    patient_id = forms.CharField(label=_("Patient ID"), max_length=64, required=False)
    modality = forms.ChoiceField(
        label=_("Modality"), required=False, choices=[("", "—"), *Modality.choices]
    )


@role_required(*TECHNOLOGIST)
def exception_list(request):
    form = ExceptionFilterForm(request.GET or None)
    flt = selectors.ExceptionFilter()
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        flt = selectors.ExceptionFilter(
            kind=data["kind"] or "",
            since=data["since"],
            patient_id=data["patient_id"].strip(),
            modality=data["modality"] or "",
        )
    counts = selectors.exception_counts(
        selectors.ExceptionFilter(since=flt.since, patient_id=flt.patient_id,
                                  modality=flt.modality)
    )
    page = Paginator(selectors.exceptions(flt), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "web/exceptions.html",
        {
            "form": form,
            "page": page,
            "counts": [(kind, KIND_LABELS[kind], counts[kind]) for kind in selectors.KINDS],
            "labels": KIND_LABELS,
            "kind": flt.kind,
        },
    )


class StudyLinkForm(forms.Form):
    study_instance_uid = forms.CharField(max_length=64)
    modality = forms.CharField(max_length=16, required=False)
    accession_number = forms.CharField(label=_("Accession number"), max_length=16)
    note = forms.CharField(label=_("Note"), max_length=200, required=False)


@require_POST
@role_required(*TECHNOLOGIST)
def study_link(request):
    """Link an unmatched gateway study to the order with this accession number."""
    form = StudyLinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("Give the accession number of the order."))
        return redirect("web:exceptions")
    data = form.cleaned_data
    order = Order.objects.filter(accession_number=data["accession_number"].strip()).first()
    if order is None:
        messages.error(request, gettext("No order has accession number %(accession)s.") % {
            "accession": data["accession_number"]})
        return redirect("web:exceptions")
    steps = [s for p in order.procedures.order_by("pk") for s in p.steps.order_by("pk")]
    step = next((s for s in steps if s.modality == data["modality"]), steps[0] if steps else None)
    if step is None:
        messages.error(request, gettext("The order has no step to link the images to."))
        return redirect("web:exceptions")
    result = forwarding.study_link(
        study_instance_uid=data["study_instance_uid"], step=step, actor=actor(request),
        note=data["note"],
    )
    messages.success(request, gettext(
        "%(count)s instance(s) corrected to order %(accession)s and sent to the PACS again. "
        "They keep their SOP Instance UIDs: check that the PACS replaced its old copy."
    ) % {"count": result.relinked, "accession": order.accession_number})
    if result.not_in_spool:
        messages.error(request, gettext(
            "%(count)s instance(s) were no longer in the spool: correct them at the PACS."
        ) % {"count": result.not_in_spool})
    return redirect("web:exceptions")
