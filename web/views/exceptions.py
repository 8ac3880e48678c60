"""The exceptions work list: one screen for performed work that needs staff (``mpps.exceptions``).

Each row links to where it is resolved (the MPPS exceptions page links or dismisses a PPS, the
order page shows a step without images). A gateway study, unmatched or matched to the wrong
order (reached from the order page), is linked here to the right order:
``mpps.forwarding.services.study_link`` corrects and forwards it; this view only words the
outcome, above all what staff must still check at a PACS.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from mpps import exceptions as selectors
from mpps.forwarding import selectors as forwarding_selectors
from mpps.forwarding import services as forwarding
from web.access import TECHNOLOGIST, role_required
from web.errors import domain_message
from web.views.common import actor
from worklist.errors import DomainError
from worklist.models import Modality, ScheduledProcedureStep, StepStatus

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
    #: Where to go back to: the exceptions screen, or the order the study came from.
    back = forms.IntegerField(required=False)


@role_required(*TECHNOLOGIST)
def step_studies(request, pk: int):
    """The gateway studies of a step, each with the form that links it to another order (a
    study matched to the wrong order: the technologist picked the wrong worklist entry)."""
    step = get_object_or_404(
        ScheduledProcedureStep.objects.select_related("requested_procedure__order__patient"),
        pk=pk,
    )
    return render(
        request,
        "web/step_studies.html",
        {"step": step, "studies": forwarding_selectors.gateway_studies_of(step)},
    )


def _link_messages(request, result: forwarding.LinkResult) -> None:
    order = result.step.requested_procedure.order
    messages.success(request, gettext(
        "%(count)s instance(s) corrected to order %(accession)s and sent again."
    ) % {"count": result.corrected, "accession": order.accession_number})
    if result.corrected and result.replaced_at:
        messages.warning(request, gettext(
            "%(destinations)s received the corrected instances under the same SOP Instance "
            "UIDs: check that each replaced its old copy."
        ) % {"destinations": ", ".join(result.replaced_at)})
        if result.previous_patient_ids:
            messages.warning(request, gettext(
                "The images carried Patient ID %(old)s: a PACS that files images under the "
                "patient (Orthanc does) keeps the old copy under %(old)s. Delete it there."
            ) % {"old": ", ".join(result.previous_patient_ids)})
    if result.corrected and result.rejected_at:
        messages.info(request, gettext(
            "%(destinations)s received corrected copies under new UIDs and a rejection note "
            "(Incorrect Modality Worklist Entry) for the old ones."
        ) % {"destinations": ", ".join(result.rejected_at)})
    if result.not_in_spool:
        messages.error(request, gettext(
            "%(count)s instance(s) were no longer in the spool: correct them at the PACS."
        ) % {"count": result.not_in_spool})
    outcomes = {
        forwarding.RELEASE_SCHEDULED: gettext(
            "Step %(step)s, which had the images before, is back on the worklist."),
        forwarding.RELEASE_KEPT_IMAGES: gettext(
            "Step %(step)s, which had the images before, keeps other images and its status."),
        forwarding.RELEASE_KEPT_PPS: gettext(
            "Step %(step)s, which had the images before, has a performed procedure step: "
            "its status follows MPPS."),
        forwarding.RELEASE_KEPT_STATUS: gettext(
            "Step %(step)s, which had the images before, stays %(status)s: settle it with "
            "the HIS if it was not performed."),
    }
    statuses = dict(
        ScheduledProcedureStep.objects.filter(sps_id__in=list(result.previous_steps))
        .values_list("sps_id", "status")
    )
    for sps_id, outcome in result.previous_steps.items():
        messages.info(request, outcomes[outcome] % {
            "step": sps_id, "status": str(StepStatus(statuses[sps_id]).label).lower()})


@require_POST
@role_required(*TECHNOLOGIST)
def study_link(request):
    """Link a gateway study to the order with this accession number (``study_link``)."""
    form = StudyLinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, gettext("Give the accession number of the order."))
        return redirect("web:exceptions")
    data = form.cleaned_data
    back = redirect("web:step_studies", pk=data["back"]) if data["back"] else redirect(
        "web:exceptions"
    )
    step = forwarding_selectors.step_to_link(
        accession_number=data["accession_number"], modality=data["modality"]
    )
    if step is None:
        messages.error(request, gettext(
            "No order with accession number %(accession)s has an exam that can take images."
        ) % {"accession": data["accession_number"]})
        return back
    try:
        result = forwarding.study_link(
            study_instance_uid=data["study_instance_uid"], step=step, actor=actor(request),
            note=data["note"],
        )
    except DomainError as exc:
        messages.error(request, domain_message(exc))
        return back
    _link_messages(request, result)
    if data["back"]:  # from the wrong order's page: show the right one
        return redirect("web:order_detail", pk=step.requested_procedure.order_id)
    return back
