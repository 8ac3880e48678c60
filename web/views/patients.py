"""Patient search, registration and editing."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from web import selectors
from web.access import ANY_ROLE, FRONT_DESK, role_required
from web.forms import PatientForm, PatientSearchForm, add_domain_error
from web.views.common import actor
from worklist import pn, services
from worklist import selectors as domain_selectors
from worklist.errors import DomainError
from worklist.models import Patient


@role_required(*ANY_ROLE)
def patient_list(request):
    form = PatientSearchForm(request.GET or None)
    patients: list[Patient] = []
    searched = False
    if form.is_bound and form.is_valid():
        searched = bool(form.cleaned_data["q"] or form.cleaned_data["birth_date"])
        patients = selectors.patient_search(
            text=form.cleaned_data["q"], birth_date=form.cleaned_data["birth_date"]
        )
    return render(
        request,
        "web/patient_list.html",
        {"form": form, "patients": patients, "searched": searched},
    )


@role_required(*ANY_ROLE)
def patient_detail(request, pk: int):
    patient = get_object_or_404(Patient, pk=pk)
    services.patient_viewed(patient=patient, actor=actor(request), channel="web")
    return render(
        request,
        "web/patient_detail.html",
        {"patient": patient, "orders": selectors.patient_orders(patient)},
    )


@role_required(*FRONT_DESK)
def patient_create(request):
    """Register a patient. Without a typed ID ris assigns one (RIS_PATIENT_ID_PATTERN); a
    patient with the same name and birth date is shown first, and registering needs a tick."""
    form = PatientForm(request.POST or None)
    duplicates: list[Patient] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if not data.get("confirm_new"):
            duplicates = domain_selectors.possible_duplicates(
                name=data["person_name"], birth_date=data.get("birth_date")
            )
        if not duplicates:
            try:
                patient = services.patient_register(
                    patient_id=data["patient_id"],
                    issuer=data.get("issuer") or "",
                    name=data["person_name"],
                    actor=actor(request),
                    **form.demographics(),
                )
            except DomainError as exc:
                add_domain_error(form, exc)
            else:
                messages.success(request, _("Patient %(name)s registered as %(id)s.") % {
                    "name": patient.person_name.display(), "id": patient.patient_id})
                return redirect("web:patient_detail", pk=patient.pk)
    return render(
        request,
        "web/patient_form.html",
        {"form": form, "patient": None, "duplicates": duplicates},
    )


@role_required(*FRONT_DESK)
def patient_edit(request, pk: int):
    patient = get_object_or_404(Patient, pk=pk)
    form = PatientForm(request.POST or None, patient=patient)
    if request.method == "POST" and form.is_valid():
        try:
            services.patient_update(
                patient=patient,
                actor=actor(request),
                name=form.cleaned_data["person_name"],
                replace_romanisation=True,
                **form.demographics(),
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Patient details saved."))
            return redirect("web:patient_detail", pk=patient.pk)
    return render(request, "web/patient_form.html", {"form": form, "patient": patient})


@role_required(*FRONT_DESK)
def pinyin_suggestion(request):
    """htmx: the alphabetic name inputs filled with the Pinyin of the ideographic ones.

    Only empty inputs (or ones still holding the previous suggestion) are filled, so a
    romanisation the clerk typed is never replaced while they edit the Hanzi.
    """
    form = PatientForm(request.GET or None)
    ideographic = "^".join(
        request.GET.get(f"ideographic_{part}", "").strip() for part in ("family", "given")
    ).rstrip("^")
    suggestion = (pn.romanise(ideographic) + "^").split("^")
    previous = request.GET.get("pinyin_suggested", "")
    values = {}
    for index, part in enumerate(("family", "given")):
        typed = request.GET.get(f"alphabetic_{part}", "").strip()
        kept = typed and typed != (previous + "^").split("^")[index]
        values[part] = typed if kept else suggestion[index]
    return render(
        request,
        "web/_pinyin_inputs.html",
        {
            "form": form,
            "family": values["family"],
            "given": values["given"],
            "suggested": "^".join(suggestion[:2]).rstrip("^"),
        },
    )
