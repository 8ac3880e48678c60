"""The integration side, for admins: HL7 messages received, the outbound queue, destinations.

Reprocessing goes through ``ris.hl7.handler.reprocess`` and retrying through
``ris.outbound_queue.retry``: the API only finds the object and reports the outcome.
Destinations are
configuration, written like devices (admins only, every change audited).
"""

from __future__ import annotations

import django_filters as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from api.filters import InstantFilter
from api.permissions import ADMIN
from api.serializers import validate_ae_title
from api.views import AuditedModelViewSet, RisApiMixin, actor_of
from mpps.forwarding.models import PacsDestination
from ris import outbound_queue
from ris.hl7 import charsets, handler
from ris.models import HL7Destination, InboundMessage, OutboundJob
from worklist.errors import InvalidTransition

# --- HL7 messages -----------------------------------------------------------------------------


class InboundMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = InboundMessage
        fields = [
            "id",
            "sender",
            "control_id",
            "message_type",
            "version",
            "charset",
            "peer",
            "size",
            "status",
            "ack_code",
            "error_code",
            "error",
            "received_at",
            "processed_at",
            "reprocess_count",
            "duplicate_of",
            "patient",
            "order",
            "links",
        ]
        read_only_fields = fields


class InboundMessageDetailSerializer(InboundMessageSerializer):
    text = serializers.SerializerMethodField(
        help_text="The message decoded in its own character set."
    )
    ack_text = serializers.SerializerMethodField(help_text="The ACK ris answered with.")

    class Meta(InboundMessageSerializer.Meta):
        fields = [*InboundMessageSerializer.Meta.fields, "text", "ack_text"]
        read_only_fields = fields

    def get_text(self, message: InboundMessage) -> str:
        return charsets.stored_text(message.raw, message.charset)

    def get_ack_text(self, message: InboundMessage) -> str:
        return charsets.ack_text(message.ack)


class InboundMessageFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=InboundMessage.Status.choices)
    sender = filters.CharFilter()
    control_id = filters.CharFilter()
    message_type = filters.CharFilter()
    received_after = InstantFilter(field_name="received_at", lookup_expr="gte")
    received_before = InstantFilter(field_name="received_at", lookup_expr="lt")

    class Meta:
        model = InboundMessage
        fields: list[str] = []


@extend_schema_view(
    reprocess=extend_schema(
        request=None,
        responses=InboundMessageDetailSerializer,
        description="Apply a message that failed (ERROR, answered AE) again, e.g. after the "
        "catalogue was fixed. Nothing is sent to the HIS. Any other status is a 409.",
    )
)
class InboundMessageViewSet(RisApiMixin, viewsets.ReadOnlyModelViewSet):
    queryset = InboundMessage.objects.defer("raw", "ack")
    filterset_class = InboundMessageFilter
    ordering_fields = ["received_at", "id"]
    ordering = ["-id"]
    read_roles = ADMIN
    write_roles = ADMIN

    def get_queryset(self):
        if self.action in ("retrieve", "reprocess"):
            return InboundMessage.objects.all()
        return super().get_queryset()

    def get_serializer_class(self):
        if self.action == "list":
            return InboundMessageSerializer
        return InboundMessageDetailSerializer

    @action(detail=True, methods=["post"])
    def reprocess(self, request: Request, pk: str) -> Response:
        message = self.get_object()
        if message.status != InboundMessage.Status.ERROR:
            raise InvalidTransition(
                f"message {message.pk} is {message.status}: only messages in ERROR are reprocessed"
            )
        result = handler.reprocess(message, actor=actor_of(request))
        return Response(InboundMessageDetailSerializer(result).data)


# --- outbound queue ---------------------------------------------------------------------------


class OutboundJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboundJob
        fields = [
            "id",
            "kind",
            "destination",
            "payload",
            "ordering_key",
            "state",
            "attempts",
            "max_attempts",
            "next_attempt_at",
            "last_error",
            "result",
            "created_at",
            "claimed_at",
            "finished_at",
        ]
        read_only_fields = fields


class SupersedeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, allow_blank=False, trim_whitespace=True)


class OutboundJobFilter(filters.FilterSet):
    state = filters.MultipleChoiceFilter(choices=OutboundJob.State.choices)
    kind = filters.CharFilter()
    destination = filters.CharFilter()
    ordering_key = filters.CharFilter()

    class Meta:
        model = OutboundJob
        fields: list[str] = []


@extend_schema_view(
    retry=extend_schema(
        request=None,
        responses=OutboundJobSerializer,
        description="Put a FAILED job back in the queue with fresh attempts; any other state "
        "is a 409.",
    )
)
class OutboundJobViewSet(RisApiMixin, viewsets.ReadOnlyModelViewSet):
    queryset = OutboundJob.objects.all()
    serializer_class = OutboundJobSerializer
    filterset_class = OutboundJobFilter
    ordering_fields = ["id", "created_at", "next_attempt_at"]
    ordering = ["-id"]
    read_roles = ADMIN
    write_roles = ADMIN

    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        if outbound_queue.retry([job.pk], actor=actor_of(request)) != 1:
            raise InvalidTransition(f"job {job.pk} is {job.state}: only FAILED jobs are retried")
        job.refresh_from_db()
        return Response(OutboundJobSerializer(job).data)

    @extend_schema(
        request=SupersedeSerializer,
        responses=OutboundJobSerializer,
        description="Mark a PENDING or FAILED job superseded by a later message: it is never "
        "sent and releases its order's later messages (audited with the reason); any other "
        "state is a 409.",
    )
    @action(detail=True, methods=["post"])
    def supersede(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        body = SupersedeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reason = body.validated_data["reason"]
        if outbound_queue.supersede([job.pk], actor=actor_of(request), reason=reason) != 1:
            raise InvalidTransition(
                f"job {job.pk} is {job.state}: only PENDING and FAILED jobs are superseded"
            )
        job.refresh_from_db()
        return Response(OutboundJobSerializer(job).data)


# --- destinations -----------------------------------------------------------------------------


class HL7DestinationSerializer(serializers.ModelSerializer):
    port = serializers.IntegerField(min_value=1, max_value=65535)
    ack_timeout_seconds = serializers.IntegerField(min_value=1, max_value=600, required=False)

    class Meta:
        model = HL7Destination
        fields = [
            "id",
            "name",
            "host",
            "port",
            "version",
            "charset",
            "sending_application",
            "sending_facility",
            "receiving_application",
            "receiving_facility",
            "use_tls",
            "ack_timeout_seconds",
            "send_order_status",
            "active",
        ]


class PacsDestinationSerializer(serializers.ModelSerializer):
    ae_title = serializers.CharField(max_length=16, validators=[validate_ae_title])
    calling_ae_title = serializers.CharField(max_length=16, required=False, allow_blank=True)
    port = serializers.IntegerField(min_value=1, max_value=65535)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=600, required=False)
    commitment_wait_seconds = serializers.IntegerField(min_value=0, max_value=3600, required=False)

    class Meta:
        model = PacsDestination
        fields = [
            "id",
            "name",
            "ae_title",
            "host",
            "port",
            "calling_ae_title",
            "send_mpps",
            "send_images",
            "storage_commitment",
            "query_availability",
            "iocm",
            "use_tls",
            "timeout_seconds",
            "commitment_wait_seconds",
            "active",
        ]

    def validate_calling_ae_title(self, value: str) -> str:
        return validate_ae_title(value) if value.strip() else ""


class HL7DestinationViewSet(AuditedModelViewSet):
    """HIS receivers of ris's order status messages."""

    queryset = HL7Destination.objects.all()
    serializer_class = HL7DestinationSerializer
    filterset_fields = ["active", "version"]
    ordering_fields = ["name"]
    ordering = ["name"]
    read_roles = ADMIN


class PacsDestinationViewSet(AuditedModelViewSet):
    """PACS that ris forwards MPPS and images to."""

    queryset = PacsDestination.objects.all()
    serializer_class = PacsDestinationSerializer
    filterset_fields = ["active"]
    ordering_fields = ["name"]
    ordering = ["name"]
    read_roles = ADMIN
