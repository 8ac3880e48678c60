"""Query-string filters of the list endpoints (django-filter) and a stable ordering.

Dates are days in the department's time zone (``TIME_ZONE``), turned into a half-open range of
instants so the ``scheduled_start`` index is used (``__date`` would convert every row).
"""

from __future__ import annotations

import datetime as dt

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.filters import OrderingFilter

from worklist import selectors
from worklist.models import (
    AuditEvent,
    Device,
    Modality,
    Order,
    OrderStatus,
    Patient,
    ProcedureType,
    ScheduledProcedureStep,
    StepStatus,
)


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _day_range(field: str, first: dt.date | None, last: dt.date | None) -> Q:
    """``field`` within the days first..last (inclusive) of the department's calendar."""
    condition = Q()
    if first is not None:
        condition &= Q(**{f"{field}__gte": _start_of(first)})
    if last is not None:
        condition &= Q(**{f"{field}__lt": _start_of(last + dt.timedelta(days=1))})
    return condition


class _InstantField(filters.fields.IsoDateTimeField):
    """An ISO 8601 instant, refused (400) when it cannot be expressed in UTC (year 1 or 9999)."""

    def clean(self, value):
        instant = super().clean(value)
        if instant is None:
            return None
        try:
            return instant.astimezone(dt.UTC)
        except OverflowError as exc:
            raise ValidationError("This date and time is out of range.", code="invalid") from exc


class InstantFilter(filters.IsoDateTimeFilter):
    field_class = _InstantField


class IdFilter(filters.NumberFilter):
    """An object id: a positive whole number that fits the database's bigint."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class StableOrderingFilter(OrderingFilter):
    """The client's ordering with the primary key as the last key, so pages never overlap."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if not any(term.lstrip("-") in ("pk", "id") for term in ordering):
            ordering.append("pk")
        return ordering


class StepFilter(filters.FilterSet):
    date = filters.DateFilter(
        method="filter_date", help_text="Steps starting on this day (department's time zone)."
    )
    date_from = filters.DateFilter(
        method="filter_date_from", help_text="Steps starting on or after this day."
    )
    date_to = filters.DateFilter(
        method="filter_date_to", help_text="Steps starting on or before this day."
    )
    start_after = InstantFilter(
        field_name="scheduled_start", lookup_expr="gte", help_text="Start at or after (ISO 8601)."
    )
    start_before = InstantFilter(
        field_name="scheduled_start", lookup_expr="lt", help_text="Start before (ISO 8601)."
    )
    station = filters.CharFilter(
        field_name="station__ae_title", help_text="Scheduled Station AE Title."
    )
    modality = filters.MultipleChoiceFilter(choices=Modality.choices)
    status = filters.MultipleChoiceFilter(
        choices=StepStatus.choices, help_text="Repeat to match any of several statuses."
    )
    patient = IdFilter(
        field_name="requested_procedure__order__patient_id", help_text="Patient (API id)."
    )
    patient_id = filters.CharFilter(
        field_name="requested_procedure__order__patient__patient_id", help_text="Patient ID."
    )
    accession = filters.CharFilter(
        field_name="requested_procedure__order__accession_number", help_text="Accession Number."
    )
    order = IdFilter(field_name="requested_procedure__order_id")
    sps_id = filters.CharFilter()
    requested_procedure_id = filters.CharFilter(
        field_name="requested_procedure__requested_procedure_id"
    )

    class Meta:
        model = ScheduledProcedureStep
        fields: list[str] = []

    def filter_date(self, queryset: QuerySet, name: str, value: dt.date) -> QuerySet:
        return _bounded(queryset, "scheduled_start", value, value)

    def filter_date_from(self, queryset: QuerySet, name: str, value: dt.date) -> QuerySet:
        return _bounded(queryset, "scheduled_start", value, None)

    def filter_date_to(self, queryset: QuerySet, name: str, value: dt.date) -> QuerySet:
        return _bounded(queryset, "scheduled_start", None, value)


def _bounded(queryset: QuerySet, field: str, first: dt.date | None, last: dt.date | None):
    if last is not None and last >= dt.date.max:
        last = None  # "up to the end of time": no upper bound, rather than an overflow.
    if first is not None and first <= dt.date.min:
        first = None
    return queryset.filter(_day_range(field, first, last))


class PatientFilter(filters.FilterSet):
    patient_id = filters.CharFilter()
    issuer = filters.CharFilter()
    name = filters.CharFilter(
        method="filter_name",
        help_text="The patient ID, or any spelling of the name, matched from its start: Hanzi "
        "(王小东), Pinyin with or without spaces (wang xiaodong, wangxiaodong, WANG^XIAODONG), "
        "initials (wxd), the given name alone or first; case and tones ignored.",
    )
    birth_date = filters.DateFilter()

    class Meta:
        model = Patient
        fields: list[str] = []

    def filter_name(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if not value.strip():
            return queryset
        return queryset.filter(pk__in=selectors.patients_matching(value).values("pk"))


class OrderFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    patient = IdFilter(field_name="patient_id", help_text="Patient (API id).")
    patient_id = filters.CharFilter(field_name="patient__patient_id", help_text="Patient ID.")
    accession = filters.CharFilter(field_name="accession_number")
    placer_order_number = filters.CharFilter()
    placer_issuer = filters.CharFilter()
    source = filters.ChoiceFilter(choices=Order.Source.choices)
    created_after = InstantFilter(field_name="created_at", lookup_expr="gte")
    created_before = InstantFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields: list[str] = []


class DeviceFilter(filters.FilterSet):
    ae_title = filters.CharFilter()
    kind = filters.ChoiceFilter(choices=Device.Kind.choices)
    modality = filters.ChoiceFilter(choices=Modality.choices)
    active = filters.BooleanFilter()

    class Meta:
        model = Device
        fields: list[str] = []


class ProcedureTypeFilter(filters.FilterSet):
    code_value = filters.CharFilter()
    code_scheme = filters.CharFilter()
    modality = filters.ChoiceFilter(choices=Modality.choices)
    active = filters.BooleanFilter()
    station = filters.CharFilter(
        field_name="stations__ae_title", distinct=True, help_text="Stations' AE title."
    )

    class Meta:
        model = ProcedureType
        fields: list[str] = []


class AuditEventFilter(filters.FilterSet):
    object_type = filters.CharFilter(help_text="e.g. worklist.ScheduledProcedureStep")
    object_id = filters.CharFilter()
    action = filters.CharFilter(help_text="e.g. step.reschedule")
    actor = filters.CharFilter()
    actor_type = filters.ChoiceFilter(choices=AuditEvent.ActorType.choices)
    after = InstantFilter(field_name="at", lookup_expr="gte")
    before = InstantFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields: list[str] = []
