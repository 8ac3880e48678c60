"""The exceptions work list: one screen for performed work that needs staff (``mpps.exceptions``).

Read only here; each row links to where it is resolved (the MPPS exceptions page links or
dismisses a PPS, the order page shows a step without images).
"""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from mpps import exceptions as selectors
from web.access import TECHNOLOGIST, role_required
from worklist.models import Modality

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
