"""Forms of the web UI: they validate what a person typed; the services decide what is allowed.

A ``DomainError`` raised by a service is put on the form (``add_domain_error``), so a refused
booking shows the domain's own message, e.g. the ScheduleConflict text, next to the fields.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from worklist import age, pn
from worklist.errors import DomainError
from worklist.models import Device, Patient, Priority, ProcedureType
from worklist.pn import PersonName

#: DICOM PN: each component group is at most 64 characters (PS3.5 Table 6.2-1).
PN_GROUP_MAX = 64
_PN_FORBIDDEN = set("^=\\") | {chr(c) for c in range(32)}


def add_domain_error(form: forms.Form, exc: DomainError) -> None:
    from web.errors import domain_message

    form.add_error(None, domain_message(exc))


def _component(label, required=False) -> forms.CharField:
    return forms.CharField(label=label, max_length=PN_GROUP_MAX, required=required)


#: Units of an Age String (PS3.5 6.2, VR AS) as the form offers them.
AGE_UNITS = [("Y", _("years")), ("M", _("months")), ("W", _("weeks")), ("D", _("days"))]


class PatientForm(forms.Form):
    """A patient with the three PN component groups (alphabetic, ideographic, phonetic)."""

    patient_id = forms.CharField(
        label=_("patient ID"),
        max_length=64,
        required=False,
        help_text=_("Leave empty and ris assigns the next patient ID."),
    )
    issuer = forms.CharField(label=_("issuer of patient ID"), max_length=64, required=False)
    alphabetic_family = _component(_("Family name (alphabetic)"))
    alphabetic_given = _component(_("Given name (alphabetic)"))
    ideographic_family = _component(_("Family name (ideographic)"))
    ideographic_given = _component(_("Given name (ideographic)"))
    phonetic_family = _component(_("Family name (phonetic)"))
    phonetic_given = _component(_("Given name (phonetic)"))
    birth_date = forms.DateField(
        label=_("Birth date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    #: Patient's Age as the patient or the referral states it, for a patient without a known
    #: birth date (worklist.age): stored as said, never turned into an invented birth date.
    age_value = forms.IntegerField(
        label=_("Age"), min_value=0, max_value=999, required=False,
        help_text=_("Only when the birth date is not known."),
    )
    age_unit = forms.ChoiceField(label=_("Age unit"), choices=AGE_UNITS, required=False)
    sex = forms.ChoiceField(label=_("Sex"), choices=Patient.Sex.choices, required=False)
    medical_alerts = forms.CharField(label=_("Medical alerts"), max_length=64, required=False)
    allergies = forms.CharField(label=_("Allergies"), max_length=64, required=False)
    pregnancy_status = forms.TypedChoiceField(
        label=_("Pregnancy status"),
        choices=[("", "—"), *Patient.Pregnancy.choices],
        coerce=int,
        empty_value=None,
        required=False,
    )

    #: Ticked by the clerk after the duplicate-patient warning: "this is another person".
    confirm_new = forms.BooleanField(
        label=_("This is a different person: register anyway"), required=False
    )

    GROUPS = ("alphabetic", "ideographic", "phonetic")

    def __init__(self, *args, patient: Patient | None = None, **kwargs) -> None:
        self.patient = patient
        if patient is not None and "initial" not in kwargs:
            kwargs["initial"] = self.initial_for(patient)
        super().__init__(*args, **kwargs)
        for group in self.GROUPS:
            for part in ("family", "given"):
                field = self.fields[f"{group}_{part}"]
                field.widget.attrs["aria-label"] = field.label
        if patient is not None:
            # The ID is the patient's identity on every worklist and image: not editable here.
            for name in ("patient_id", "issuer"):
                self.fields[name].disabled = True
            self.fields["patient_id"].help_text = ""
            del self.fields["confirm_new"]
        else:
            self.fields["issuer"].initial = settings.RIS_ISSUER_OF_PATIENT_ID

    @staticmethod
    def initial_for(patient: Patient) -> dict:
        initial = {
            "patient_id": patient.patient_id,
            "issuer": patient.issuer,
            "birth_date": patient.birth_date,
            "sex": patient.sex,
            "age_value": int(patient.age[:3]) if patient.age else None,
            "age_unit": patient.age[3:] or "Y",
            "medical_alerts": patient.medical_alerts,
            "allergies": patient.allergies,
            "pregnancy_status": patient.pregnancy_status,
        }
        for group, value in zip(PatientForm.GROUPS, patient.person_name.groups, strict=True):
            parts = value.split("^")
            initial[f"{group}_family"] = parts[0]
            initial[f"{group}_given"] = parts[1] if len(parts) > 1 else ""
        return initial

    def clean_patient_id(self) -> str:
        value = (self.cleaned_data.get("patient_id") or "").strip()
        if set(value) & ({"\\"} | {chr(c) for c in range(32)}):
            raise forms.ValidationError(_("A patient ID may not contain \\ or control characters."))
        return value

    def clean(self) -> dict:
        data = super().clean()
        for name, value in list(data.items()):
            if name.endswith(("_family", "_given")) and value:
                value = value.strip()
                if set(value) & _PN_FORBIDDEN:
                    self.add_error(name, _("A name may not contain ^, = or \\."))
                data[name] = value
        groups = []
        for group in self.GROUPS:
            family, given = data.get(f"{group}_family", ""), data.get(f"{group}_given", "")
            text = f"{family}^{given}".rstrip("^") if (family or given) else ""
            if len(text) > PN_GROUP_MAX:
                self.add_error(f"{group}_family", _("This name group is too long (64 at most)."))
            groups.append(text)
        if not any(groups):
            raise forms.ValidationError(_("Enter at least one name (alphabetic or ideographic)."))
        if groups[0] and groups[0] == pn.romanise(groups[1]):
            # The clerk kept ris's Pinyin suggestion: it stays a derived romanisation (re-derived
            # if the HIS later corrects the Hanzi); anything else typed there is the clerk's own.
            groups[0] = ""
        data["person_name"] = PersonName(*groups)
        if (
            self.patient is None
            and data.get("patient_id")
            and Patient.objects.filter(
                patient_id=data["patient_id"], issuer=data.get("issuer") or ""
            ).exists()
        ):
            self.add_error("patient_id", _("A patient with this ID and issuer already exists."))
        return data

    def demographics(self) -> dict:
        data = self.cleaned_data
        number = data.get("age_value")
        return {
            "birth_date": data.get("birth_date"),
            "age": age.parse_age(str(number), data.get("age_unit") or "Y")
            if number is not None else "",
            "sex": data.get("sex") or "",
            "medical_alerts": data.get("medical_alerts") or "",
            "allergies": data.get("allergies") or "",
            "pregnancy_status": data.get("pregnancy_status"),
        }


class PatientSearchForm(forms.Form):
    q = forms.CharField(label=_("Name or patient ID"), max_length=200, required=False)
    birth_date = forms.DateField(
        label=_("Birth date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )


def _aware(day: dt.date, time: dt.time) -> dt.datetime:
    """The department-local date and time as an aware datetime, refusing DST-gap times."""
    naive = dt.datetime.combine(day, time)
    zone = timezone.get_current_timezone()
    try:
        value = timezone.make_aware(naive, zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - zone config
        raise forms.ValidationError(str(exc)) from exc
    # A wall time inside a spring-forward gap does not exist: it does not survive a round trip.
    if value.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise forms.ValidationError(_("This local time does not exist (daylight saving change)."))
    return value


def _confirm_warnings() -> forms.BooleanField:
    """Ticked once the clerk has read the booking's warnings (``templates/web/_warnings.html``,
    where it is rendered; ``_form.html`` leaves it out)."""
    return forms.BooleanField(label=_("Book anyway"), required=False)


class SlotFields(forms.Form):
    """Station, date and time of a slot; the start is department-local time."""

    station = forms.ModelChoiceField(
        label=_("Station"),
        queryset=Device.objects.filter(kind=Device.Kind.MODALITY, active=True),
    )
    date = forms.DateField(label=_("Date"), widget=forms.DateInput(attrs={"type": "date"}))
    time = forms.TimeField(
        label=_("Time"), widget=forms.TimeInput(attrs={"type": "time", "step": 300})
    )
    duration_minutes = forms.IntegerField(
        label=_("Duration (minutes)"), min_value=1, max_value=24 * 60, required=False
    )
    confirm_warnings = _confirm_warnings()

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date") and data.get("time") is not None:
            try:
                data["start"] = _aware(data["date"], data["time"])
            except forms.ValidationError as exc:
                self.add_error("time", exc)
        return data


class BookForm(SlotFields):
    """Book an unscheduled step (chosen from the waiting list) into a slot."""

    step = forms.ModelChoiceField(label=_("Exam to book"), queryset=None)

    field_order = ["step", "station", "date", "time", "duration_minutes", "confirm_warnings"]

    def __init__(self, *args, steps=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from worklist.models import ScheduledProcedureStep, StepStatus

        self.fields["step"].queryset = steps if steps is not None else (
            ScheduledProcedureStep.objects.filter(status=StepStatus.UNSCHEDULED).select_related(
                "requested_procedure__order__patient"
            )
        )
        self.fields["step"].label_from_instance = _step_label


def _step_label(step) -> str:
    patient = step.requested_procedure.order.patient
    return f"{patient.person_name.display()} · {step.modality} · {step.description}"


class MoveForm(SlotFields):
    """Move a scheduled step to another time and/or station."""


class OrderForm(forms.Form):
    procedure_type = forms.ModelChoiceField(
        label=_("Procedure"), queryset=ProcedureType.objects.filter(active=True)
    )
    priority = forms.ChoiceField(
        label=_("Priority"), choices=Priority.choices, initial=Priority.ROUTINE
    )
    referring_physician = forms.CharField(
        label=_("Referring physician"), max_length=64, required=False
    )
    requesting_physician = forms.CharField(
        label=_("Requesting physician"), max_length=64, required=False
    )
    reason = forms.CharField(label=_("Reason for the request"), max_length=64, required=False)
    comments = forms.CharField(label=_("Comments"), widget=forms.Textarea(attrs={"rows": 3}),
                               required=False)


class NewOrderForm(OrderForm):
    """A new order; leaving the slot empty puts the exam on the waiting list (unscheduled)."""

    station = forms.ModelChoiceField(
        label=_("Station"),
        queryset=Device.objects.filter(kind=Device.Kind.MODALITY, active=True),
        required=False,
    )
    date = forms.DateField(
        label=_("Date"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    time = forms.TimeField(
        label=_("Time"), required=False,
        widget=forms.TimeInput(attrs={"type": "time", "step": 300}),
    )
    confirm_warnings = _confirm_warnings()

    def clean(self) -> dict:
        data = super().clean()
        day, time = data.get("date"), data.get("time")
        if (day is None) != (time is None):
            raise forms.ValidationError(_("Give both a date and a time, or neither."))
        if day is not None and time is not None:
            try:
                data["start"] = _aware(day, time)
            except forms.ValidationError as exc:
                self.add_error("time", exc)
        station, ptype = data.get("station"), data.get("procedure_type")
        if station is not None and ptype is not None and station.modality and (
            station.modality != ptype.modality
        ):
            self.add_error(
                "station",
                _("%(station)s is a %(modality)s station.")
                % {"station": station.ae_title, "modality": station.modality},
            )
        return data


class EditOrderForm(OrderForm):
    """Editable order fields: the procedure itself is changed by cancelling and re-ordering."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["procedure_type"]


#: Why the front desk cancels an order: the codes stored after ``cancel:`` in the order's and
#: its steps' reason, with their labels. A site offers the subset listed in RIS_CANCEL_REASONS,
#: in that order.
CANCEL_REASONS = {
    "patient_request": _("Patient asked to cancel"),
    "duplicate": _("Duplicate order"),
    "wrong_procedure": _("Wrong procedure ordered"),
    "contraindication": _("Contraindication found"),
    "physician_request": _("Requesting physician withdrew the order"),
    "done_elsewhere": _("Exam done elsewhere"),
    "other": _("Other"),
}


def cancel_reason_choices() -> list[tuple[str, str]]:
    codes = settings.RIS_CANCEL_REASONS or list(CANCEL_REASONS)
    return [(code, CANCEL_REASONS.get(code, code)) for code in codes]


class CancelOrderForm(forms.Form):
    """The confirmation of an order cancel: a reason from the site's coded list."""

    reason = forms.ChoiceField(label=_("Reason"), choices=cancel_reason_choices)


class CheckInForm(forms.Form):
    """Arrived / ready from the check-in list; a no-show goes through ``NoShowForm`` (it asks)."""

    ACTIONS = {
        "arrived": "ARRIVED",
        "ready": "READY",
    }
    action = forms.ChoiceField(
        choices=[
            ("arrived", pgettext_lazy("check-in action", "Arrived")),
            ("ready", pgettext_lazy("check-in action", "Ready")),
        ]
    )


#: Why a patient did not come: the codes stored after ``no-show:`` in the step's reason, with
#: their labels. A site offers the subset listed in RIS_NO_SHOW_REASONS, in that order.
NO_SHOW_REASONS = {
    "did_not_come": _("Patient did not come"),
    "cancelled_by_patient": _("Patient cancelled at short notice"),
    "too_late": _("Patient came too late"),
    "unwell": _("Patient too unwell for the exam"),
    "not_prepared": _("Preparation not done (e.g. not fasting)"),
    "no_transport": _("No transport"),
    "other": _("Other"),
}


def no_show_reason_choices() -> list[tuple[str, str]]:
    codes = settings.RIS_NO_SHOW_REASONS or list(NO_SHOW_REASONS)
    return [(code, NO_SHOW_REASONS.get(code, code)) for code in codes]


class NoShowForm(forms.Form):
    """The confirmation of a no-show: a reason from the site's coded list."""

    reason = forms.ChoiceField(label=_("Reason"), choices=no_show_reason_choices)


class CatalogImportForm(forms.Form):
    file = forms.FileField(label=_("Catalogue CSV file"))

    MAX_BYTES = 5 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than 5 MB."))
        raw = upload.read()
        # Spreadsheets exported on Chinese Windows are GB18030, elsewhere UTF-8 (often with BOM).
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError:
                continue
        raise forms.ValidationError(_("The file is neither UTF-8 nor GB18030 text."))
