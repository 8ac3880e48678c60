"""API views: decode with a serializer, call one service (writes) or query (reads), encode.

Status changes go through ``worklist.services`` only; a refused change raises a
``DomainError`` that :mod:`api.exceptions` turns into a 409 with the domain's message.
"""

from __future__ import annotations

from django.core.cache import caches
from django.db.models import Prefetch, QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from api import filters, serializers
from api.pagination import RisPagination
from api.permissions import (
    ADMIN,
    ANY_ROLE,
    DESK_OR_TECHNOLOGIST,
    FRONT_DESK,
    HasRole,
)
from ris import security
from ris.roles import user_roles
from worklist import configuration, scheduling, services
from worklist.audit import Actor
from worklist.models import (
    AuditEvent,
    Device,
    Order,
    Patient,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
)
from worklist.services import ProcedureRequest

#: Token first: an anonymous request is answered 401 with ``WWW-Authenticate: Token``.
AUTHENTICATION = [TokenAuthentication, SessionAuthentication]


def actor_of(request: Request) -> Actor:
    return Actor.for_user(request.user)


class RisApiMixin:
    """What every endpoint shares: authentication, roles, paging, filtering, stable ordering."""

    authentication_classes = AUTHENTICATION
    permission_classes = [HasRole]
    pagination_class = RisPagination
    filter_backends = [DjangoFilterBackend, filters.StableOrderingFilter]
    # JSON only: nested input (procedures, codes) has no faithful form-encoded shape.
    parser_classes = [JSONParser]
    # Any path segment reaches the view, so a malformed id is a JSON 404 like a missing one.
    lookup_value_regex = r"[^/]+"
    read_roles = ANY_ROLE
    write_roles = ADMIN


# --- patients ---------------------------------------------------------------------------------


@extend_schema_view(
    create=extend_schema(
        request=serializers.PatientCreateSerializer,
        responses={201: serializers.PatientSerializer},
        description="Register a patient. An existing patient ID with the same issuer is a 409.",
    ),
    partial_update=extend_schema(
        request=serializers.PatientUpdateSerializer,
        responses=serializers.PatientSerializer,
        description="Change demographics (the worklist follows at once).",
    ),
)
class PatientViewSet(
    RisApiMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Patient.objects.all()
    serializer_class = serializers.PatientSerializer
    filterset_class = filters.PatientFilter
    ordering_fields = ["patient_id", "family_name", "birth_date", "created_at", "updated_at"]
    ordering = ["family_name", "given_name", "patient_id"]
    write_roles = FRONT_DESK

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        response = super().retrieve(request, *args, **kwargs)
        services.patient_viewed(patient=self.get_object(), actor=actor_of(request), channel="api")
        return response

    def create(self, request: Request) -> Response:
        data = validated(serializers.PatientCreateSerializer, request.data)
        patient = services.patient_register(
            patient_id=data.pop("patient_id"),
            issuer=data.pop("issuer"),
            name=data.pop("name"),
            actor=actor_of(request),
            **data,
        )
        return Response(serializers.PatientSerializer(patient).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        patient = self.get_object()
        data = validated(serializers.PatientUpdateSerializer, request.data, partial=True)
        patient = services.patient_update(
            patient=patient, actor=actor_of(request), name=data.pop("name", None), **data
        )
        return Response(serializers.PatientSerializer(patient).data)


# --- orders -----------------------------------------------------------------------------------


def _orders() -> QuerySet[Order]:
    """Orders with their procedures and steps in a constant number of queries."""
    steps = ScheduledProcedureStep.objects.select_related("station").order_by(
        "scheduled_start", "pk"
    )
    procedures = RequestedProcedure.objects.order_by("pk").prefetch_related(
        Prefetch("steps", queryset=steps)
    )
    return Order.objects.select_related("patient").prefetch_related(
        Prefetch("procedures", queryset=procedures)
    )


@extend_schema_view(
    create=extend_schema(
        request=serializers.OrderCreateSerializer,
        responses={201: serializers.OrderSerializer},
        description="Create an order with one requested procedure and step per procedure. ris "
        "assigns the accession number and all identifiers. A duplicate placer order number "
        "or a booked slot is a 409.",
    ),
    cancel=extend_schema(
        request=serializers.OrderCancelSerializer,
        responses=serializers.OrderSerializer,
        description="Cancel every step not yet performed; refused (409) when a step started.",
    ),
)
class OrderViewSet(
    RisApiMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = _orders()
    serializer_class = serializers.OrderSerializer
    filterset_class = filters.OrderFilter
    ordering_fields = ["created_at", "updated_at", "accession_number", "priority", "status"]
    ordering = ["-created_at"]
    write_roles = FRONT_DESK

    def create(self, request: Request) -> Response:
        data = validated(serializers.OrderCreateSerializer, request.data)
        procedures = [
            ProcedureRequest(
                procedure_type=item["procedure_type"],
                scheduled_start=item.get("scheduled_start"),
                station=item.get("station"),
                priority=item.get("priority", ""),
                description=item.get("description", ""),
                performing_physician=item.get("performing_physician", ""),
                extra={key: item[key] for key in ("transport_arrangements",) if item.get(key)},
            )
            for item in data.pop("procedures")
        ]
        order = services.order_create(
            procedures=procedures, actor=actor_of(request), source=Order.Source.API, **data
        )
        return Response(
            serializers.OrderSerializer(_orders().get(pk=order.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        order = self.get_object()
        data = validated(serializers.OrderCancelSerializer, request.data)
        services.order_cancel(
            order=order,
            actor=actor_of(request),
            reason=data["reason"],
            discontinue=data["discontinue"],
        )
        return Response(serializers.OrderSerializer(_orders().get(pk=order.pk)).data)


# --- scheduled steps --------------------------------------------------------------------------


@extend_schema_view(
    schedule=extend_schema(
        request=serializers.StepScheduleSerializer,
        responses=serializers.StepSerializer,
        description="Book an unscheduled step or move a scheduled one (time, station, "
        "duration). A clash on the station or outside its opening hours is a 409.",
    ),
    free_slots=extend_schema(
        parameters=[serializers.FreeSlotQuerySerializer],
        responses=serializers.FreeSlotSerializer(many=True),
        description="The first free slots for this step across the stations that perform its "
        "procedure: the station's weekly template, breaks and exceptions, other bookings of the "
        "station and of the patient, the contrast gap, and reserved slots only for the cases "
        "they are kept for. Book one with POST schedule.",
    ),
    check_in=extend_schema(
        request=serializers.StepCheckInSerializer,
        responses=serializers.StepSerializer,
        description="The patient arrived (ARRIVED) or is prepared (READY).",
    ),
    cancel=extend_schema(
        request=serializers.CancelSerializer,
        responses=serializers.StepSerializer,
        description="Cancel one step with a reason; a started or finished step is a 409.",
    ),
)
class StepViewSet(
    RisApiMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = ScheduledProcedureStep.objects.select_related(
        "station", "requested_procedure__order__patient"
    )
    serializer_class = serializers.StepSerializer
    filterset_class = filters.StepFilter
    ordering_fields = ["scheduled_start", "sps_id", "modality", "status", "created_at"]
    ordering = ["scheduled_start", "sps_id"]
    write_roles = FRONT_DESK
    action_roles = {"check_in": DESK_OR_TECHNOLOGIST}

    def list(self, request: Request) -> Response:
        """The day list is the hot path: rows straight from one query, no model instances."""
        rows = serializers.step_rows(self.filter_queryset(self.get_queryset()))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([serializers.step_row_json(row) for row in page])

    @action(detail=True, methods=["post"])
    def schedule(self, request: Request, pk: str) -> Response:
        step = self.get_object()
        data = validated(serializers.StepScheduleSerializer, request.data)
        services.step_schedule(
            step=step,
            start=data["start"],
            station=data.get("station"),
            duration_minutes=data.get("duration_minutes"),
            actor=actor_of(request),
        )
        return self._fresh(step)

    @action(detail=True, methods=["get"], url_path="free-slots")
    def free_slots(self, request: Request, pk: str) -> Response:
        step = self.get_object()
        query = validated(serializers.FreeSlotQuerySerializer, request.query_params)
        slots = scheduling.next_free_slots(
            step=step, limit=query["limit"], after=query.get("after")
        )
        return Response(serializers.FreeSlotSerializer(slots, many=True).data)

    @action(detail=True, methods=["post"], url_path="check-in")
    def check_in(self, request: Request, pk: str) -> Response:
        step = self.get_object()
        data = validated(serializers.StepCheckInSerializer, request.data)
        services.step_transition(step=step, to=data["status"], actor=actor_of(request))
        return self._fresh(step)

    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        step = self.get_object()
        data = validated(serializers.CancelSerializer, request.data)
        services.step_transition(
            step=step, to="CANCELED", reason=data["reason"], actor=actor_of(request)
        )
        return self._fresh(step)

    def _fresh(self, step: ScheduledProcedureStep) -> Response:
        return Response(serializers.StepSerializer(self.get_queryset().get(pk=step.pk)).data)


# --- configuration ----------------------------------------------------------------------------


class AuditedModelViewSet(RisApiMixin, viewsets.ModelViewSet):
    """Configuration objects: admins write them, and every write lands in the audit trail."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    write_roles = ADMIN

    def perform_create(self, serializer) -> None:
        configuration.configuration_save(
            actor=actor_of(self.request),
            model=serializer.Meta.model,
            pk=None,
            write=serializer.save,
        )

    def perform_update(self, serializer) -> None:
        configuration.configuration_save(
            actor=actor_of(self.request),
            model=serializer.Meta.model,
            pk=serializer.instance.pk,
            write=serializer.save,
        )

    def perform_destroy(self, instance) -> None:
        configuration.configuration_delete(actor=actor_of(self.request), obj=instance)


@extend_schema_view(
    destroy=extend_schema(
        description="Delete a device; one that has steps is a 409 (deactivate it instead)."
    )
)
class DeviceViewSet(AuditedModelViewSet):
    queryset = Device.objects.all()
    serializer_class = serializers.DeviceSerializer
    filterset_class = filters.DeviceFilter
    ordering_fields = ["ae_title", "kind", "modality"]
    ordering = ["ae_title"]


class ProcedureTypeViewSet(AuditedModelViewSet):
    queryset = ProcedureType.objects.prefetch_related("stations", "order_codes")
    serializer_class = serializers.ProcedureTypeSerializer
    filterset_class = filters.ProcedureTypeFilter
    ordering_fields = ["code_value", "code_meaning", "modality"]
    ordering = ["code_value"]
    # Deleting an entry only unlinks the requested procedures (SET_NULL): they keep their own
    # copy of the code, so no history is lost.


# --- audit ------------------------------------------------------------------------------------


class AuditEventViewSet(RisApiMixin, viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.select_related("user")
    serializer_class = serializers.AuditEventSerializer
    filterset_class = filters.AuditEventFilter
    ordering_fields = ["at"]
    ordering = ["-at"]
    read_roles = ADMIN


# --- authentication ---------------------------------------------------------------------------


class TokenThrottle(AnonRateThrottle):
    """Password guessing against the token endpoint is slowed per client address, counted in the
    database cache so that the rate holds across gunicorn workers and ris processes (the lockout
    itself is django-axes', ris/security.py)."""

    scope = "token"
    rate = "30/minute"
    cache = caches["shared"]


@extend_schema(
    request=serializers.TokenRequestSerializer,
    responses={200: serializers.TokenSerializer},
    auth=[],
    description="Exchange a username and password for the user's API token "
    "(send it as `Authorization: Token <token>`).",
)
class TokenView(ObtainAuthToken):
    throttle_classes = [TokenThrottle]

    def get_serializer_context(self) -> dict:
        # django-axes marks a locked-out attempt on the request it is given; give it Django's
        # own request, which its middleware then answers (429), not DRF's wrapper.
        return {**super().get_serializer_context(), "request": self.request._request}

    def post(self, request: Request, *args, **kwargs) -> Response:
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:
            from rest_framework.authtoken.models import Token

            user = Token.objects.get(key=response.data["token"]).user
            security.record_token_issued(request._request, user)
        return response


@extend_schema(responses=serializers.WhoAmISerializer)
class WhoAmIView(APIView):
    """The authenticated user and the roles that decide what the API lets them do."""

    authentication_classes = AUTHENTICATION
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        roles = sorted(role.value for role in user_roles(request.user))
        return Response({"username": request.user.get_username(), "roles": roles})


class ApiNotFoundView(APIView):
    """Unknown paths under /api/ answer like the API (JSON), and only to users who logged in."""

    authentication_classes = AUTHENTICATION
    permission_classes = [IsAuthenticated]
    schema = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise NotFound("There is no such API endpoint.")


def validated(serializer_class, data, **kwargs) -> dict:
    """The validated input, or a ValidationError (400 with messages per field)."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
