"""``/api/v1/performed-steps/``: what modalities reported (MPPS), and the reconciling of exceptions.

Reads through ``mpps.models``/``mpps.selectors``; linking and dismissing through
``mpps.services`` (which moves the steps through ``worklist.services``). A technologist
reconciles, as in the web UI.
"""

from __future__ import annotations

import django_filters as filters
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from api.filters import InstantFilter
from api.permissions import TECHNOLOGIST
from api.serializers import CodeSerializer
from api.views import RisApiMixin, actor_of, validated
from mpps import services as mpps_services
from mpps.models import (
    EXCEPTION_STATES,
    PerformedProcedureStep,
    PerformedSeries,
    PPSStatus,
    Reconciliation,
    StepLink,
)
from worklist.models import Order


class PerformedSeriesSerializer(serializers.ModelSerializer):
    image_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = PerformedSeries
        fields = [
            "series_instance_uid",
            "protocol_name",
            "description",
            "performing_physician",
            "operators",
            "retrieve_ae_title",
            "image_count",
        ]


class LinkedStepSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="step.id")
    sps_id = serializers.CharField(source="step.sps_id")
    status = serializers.CharField(source="step.status")
    accession_number = serializers.CharField(
        source="step.requested_procedure.order.accession_number"
    )

    class Meta:
        model = StepLink
        fields = ["id", "sps_id", "status", "accession_number", "source", "created_at"]


class PerformedStepSerializer(serializers.ModelSerializer):
    series = PerformedSeriesSerializer(many=True, read_only=True)
    linked_steps = LinkedStepSerializer(source="links", many=True, read_only=True)
    procedure_codes = CodeSerializer(many=True, read_only=True)
    protocol_codes = CodeSerializer(many=True, read_only=True)
    is_exception = serializers.BooleanField(read_only=True)

    class Meta:
        model = PerformedProcedureStep
        fields = [
            "id",
            "sop_instance_uid",
            "pps_id",
            "status",
            "calling_ae_title",
            "station_ae_title",
            "station_name",
            "location",
            "modality",
            "started_at",
            "ended_at",
            "description",
            "type_description",
            "comments",
            "study_id",
            "patient_name",
            "patient_id",
            "procedure_codes",
            "protocol_codes",
            "discontinuation_reason",
            "scheduled_step_refs",
            "reconciliation",
            "reconciliation_note",
            "is_exception",
            "linked_steps",
            "series",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PerformedStepDetailSerializer(PerformedStepSerializer):
    class Meta(PerformedStepSerializer.Meta):
        fields = [*PerformedStepSerializer.Meta.fields, "dataset"]
        read_only_fields = fields


class LinkOrderSerializer(serializers.Serializer):
    order = serializers.PrimaryKeyRelatedField(
        queryset=Order.objects.all(),
        help_text="The order whose live steps (of the PPS's modality, if any) the PPS performed.",
    )
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class DismissSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Why the PPS belongs to no order.")


class PerformedStepFilter(filters.FilterSet):
    exception = filters.BooleanFilter(
        method="filter_exception", help_text="true: only PPS waiting to be reconciled."
    )
    reconciliation = filters.MultipleChoiceFilter(choices=Reconciliation.choices)
    status = filters.MultipleChoiceFilter(choices=PPSStatus.choices)
    station = filters.CharFilter(field_name="station_ae_title")
    modality = filters.CharFilter()
    patient_id = filters.CharFilter()
    started_after = InstantFilter(field_name="started_at", lookup_expr="gte")
    started_before = InstantFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = PerformedProcedureStep
        fields: list[str] = []

    def filter_exception(self, queryset: QuerySet, name: str, value: bool | None) -> QuerySet:
        if value is None:
            return queryset
        if value:
            return queryset.filter(reconciliation__in=EXCEPTION_STATES)
        return queryset.exclude(reconciliation__in=EXCEPTION_STATES)


def _performed_steps() -> QuerySet[PerformedProcedureStep]:
    links = StepLink.objects.select_related("step__requested_procedure__order").order_by("pk")
    return PerformedProcedureStep.objects.defer("dataset").prefetch_related(
        "series", Prefetch("links", queryset=links)
    )


@extend_schema_view(
    link=extend_schema(
        request=LinkOrderSerializer,
        responses=PerformedStepSerializer,
        description="Reconcile an exception: the PPS performed this order's live steps, which "
        "then follow the PPS's status. A step that cannot follow (e.g. cancelled) is a 409.",
    ),
    dismiss=extend_schema(
        request=DismissSerializer,
        responses=PerformedStepSerializer,
        description="Close an exception without linking it (test, QA or phantom acquisition).",
    ),
)
class PerformedStepViewSet(RisApiMixin, viewsets.ReadOnlyModelViewSet):
    queryset = _performed_steps()
    filterset_class = PerformedStepFilter
    ordering_fields = ["started_at", "created_at", "station_ae_title"]
    ordering = ["-started_at"]
    write_roles = TECHNOLOGIST

    def get_queryset(self):
        if self.action == "retrieve":
            return _performed_steps().defer(None)
        return super().get_queryset()

    def get_serializer_class(self):
        if self.action == "retrieve":
            return PerformedStepDetailSerializer
        return PerformedStepSerializer

    @action(detail=True, methods=["post"])
    def link(self, request: Request, pk: str) -> Response:
        pps = self.get_object()
        data = validated(LinkOrderSerializer, request.data)
        mpps_services.pps_link_order(
            pps=pps, order=data["order"], actor=actor_of(request), note=data["note"]
        )
        return Response(PerformedStepSerializer(_performed_steps().get(pk=pps.pk)).data)

    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str) -> Response:
        pps = self.get_object()
        data = validated(DismissSerializer, request.data)
        mpps_services.pps_dismiss(pps=pps, actor=actor_of(request), reason=data["reason"])
        return Response(PerformedStepSerializer(_performed_steps().get(pk=pps.pk)).data)
