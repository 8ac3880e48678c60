"""Input and output shapes of the API. Serializers only decode and validate; they never save.

Output serializers are flat reads of the models (with the summaries a client needs to show a row
without a second request); input serializers check what a service needs before it is called, so
a bad value is a 400 with a message on its field and the domain only ever sees well-formed data.
"""

from __future__ import annotations

import datetime as dt
import re

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from worklist import age
from worklist.models import (
    AuditEvent,
    Device,
    Order,
    Patient,
    Priority,
    ProcedureOrderCode,
    ProcedureType,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatus,
)
from worklist.pn import PersonName
from worklist.services import DEMOGRAPHICS
from worklist.states import allowed_step_transitions

#: PS3.5 Table 6.2-1: a PN component group holds at most 64 characters.
PN_GROUP_MAX = 64


# --- validators -------------------------------------------------------------------------------


def _no_control_characters(value: str, *, what: str) -> None:
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise serializers.ValidationError(f"{what} cannot contain control characters.")


def parse_person_name(value: str) -> PersonName:
    """A DICOM PN (``Wang^XiaoDong=王^小东=``) or a 400 that says what is wrong with it."""
    _no_control_characters(value, what="A person name")
    if "\\" in value:
        raise serializers.ValidationError("A person name cannot contain a backslash.")
    try:
        name = PersonName.parse(value)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from exc
    for group in name.groups:
        if len(group) > PN_GROUP_MAX:
            raise serializers.ValidationError(
                f"Each name group holds at most {PN_GROUP_MAX} characters."
            )
    return name


class PersonNameField(serializers.CharField):
    """A DICOM PN string; validated, and stored back in its canonical form."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 200)
        kwargs.setdefault(
            "help_text",
            "DICOM PN: family^given^middle^prefix^suffix, with the alphabetic, ideographic and "
            "phonetic groups separated by '=' (e.g. Wang^XiaoDong=王^小东).",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        text = super().to_internal_value(data)
        return str(parse_person_name(text)) if text else text


def validate_ae_title(value: str) -> str:
    """PS3.5 AE VR: up to 16 characters of the default repertoire, no backslash or control."""
    stripped = value.strip()
    if not stripped:
        raise serializers.ValidationError("An AE title cannot be blank.")
    if len(stripped) > 16:
        raise serializers.ValidationError("An AE title has at most 16 characters.")
    if "\\" in stripped or any(ord(ch) < 32 or ord(ch) > 126 for ch in stripped):
        raise serializers.ValidationError(
            "An AE title uses printable ASCII characters only, without a backslash."
        )
    return stripped


@extend_schema_field(
    {
        "type": "string",
        "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
        "example": "07:30",
    }
)
class WallClockTimeField(serializers.TimeField):
    """A time of day on the department's clock (no UTC offset: opening hours are local)."""

    def to_internal_value(self, value):
        if isinstance(value, str) and not _WALL_CLOCK.fullmatch(value):
            self.fail("invalid", format="hh:mm[:ss]")
        return super().to_internal_value(value)

    def to_representation(self, value):
        return None if value is None else value.strftime("%H:%M:%S")


_WALL_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?")


class CodeSerializer(serializers.Serializer):
    """One item of a DICOM code sequence (Code Value, Coding Scheme Designator, Code Meaning)."""

    value = serializers.CharField(max_length=16)
    scheme = serializers.CharField(max_length=16)
    meaning = serializers.CharField(max_length=64)


class OtherPatientIdSerializer(serializers.Serializer):
    """One item of Other Patient IDs Sequence (0010,1002)."""

    id = serializers.CharField(max_length=64)
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)
    type = serializers.CharField(max_length=16, required=False, allow_blank=True)


# --- patients ---------------------------------------------------------------------------------


class PatientSummarySerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()
    display_name = serializers.SerializerMethodField()

    class Meta:
        model = Patient
        fields = ["id", "patient_id", "issuer", "name", "display_name", "birth_date", "sex"]

    def get_name(self, patient: Patient) -> str:
        return str(patient.person_name)

    def get_display_name(self, patient: Patient) -> str:
        return patient.person_name.display()


class PatientSerializer(PatientSummarySerializer):
    other_ids = OtherPatientIdSerializer(many=True, read_only=True)

    class Meta:
        model = Patient
        fields = [
            "id",
            "patient_id",
            "issuer",
            "name",
            "display_name",
            "name_alphabetic",
            "name_ideographic",
            "name_phonetic",
            "name_alphabetic_derived",
            *DEMOGRAPHICS,
            "merged_into",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PatientUpdateSerializer(serializers.ModelSerializer):
    """Demographics a client may change; the identity (patient ID, issuer) is not one of them."""

    name = PersonNameField(required=False)
    other_ids = OtherPatientIdSerializer(many=True, required=False)
    weight_kg = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=0, required=False, allow_null=True
    )
    size_m = serializers.DecimalField(
        max_digits=4, decimal_places=2, min_value=0, required=False, allow_null=True
    )

    class Meta:
        model = Patient
        fields = ["name", *DEMOGRAPHICS]

    def validate_birth_date(self, value: dt.date | None) -> dt.date | None:
        if value is not None and value > timezone.localdate():
            raise serializers.ValidationError("A birth date cannot be in the future.")
        return value

    def validate_name(self, value: str) -> str:
        if not value:
            raise serializers.ValidationError("A patient needs a name.")
        return value

    def validate_age(self, value: str) -> str:
        """Patient's Age as stated (``45``, ``45Y``, ``3M``), stored as an Age String."""
        try:
            return age.parse_age(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class PatientCreateSerializer(PatientUpdateSerializer):
    #: Empty or absent: ris assigns the next ID from RIS_PATIENT_ID_PATTERN.
    patient_id = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )
    issuer = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    name = PersonNameField()

    class Meta(PatientUpdateSerializer.Meta):
        fields = ["patient_id", "issuer", *PatientUpdateSerializer.Meta.fields]
        # The uniqueness of (patient_id, issuer) is answered with a 409 by the view, not a 400.
        validators: list = []

    def validate_patient_id(self, value: str) -> str:
        value = value.strip()
        _no_control_characters(value, what="A patient ID")
        if "\\" in value:
            raise serializers.ValidationError("A patient ID cannot contain a backslash.")
        return value


# --- steps ------------------------------------------------------------------------------------


class RequestedProcedureSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = RequestedProcedure
        fields = [
            "id",
            "requested_procedure_id",
            "study_instance_uid",
            "description",
            "code_value",
            "code_scheme",
            "code_meaning",
            "priority",
        ]


class OrderSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ["id", "accession_number", "status", "priority", "placer_order_number"]


class _StepFieldsMixin(serializers.ModelSerializer):
    station_ae_title = serializers.CharField(
        source="station.ae_title", read_only=True, allow_null=True, default=None
    )
    protocol_codes = CodeSerializer(many=True, read_only=True)
    allowed_transitions = serializers.SerializerMethodField(
        help_text="Statuses this step may move to next (worklist.states)."
    )

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(StepStatus.choices)))
    def get_allowed_transitions(self, step: ScheduledProcedureStep) -> list[str]:
        return sorted(allowed_step_transitions(step.status))


STEP_FIELDS = [
    "id",
    "sps_id",
    "status",
    "status_reason",
    "allowed_transitions",
    "modality",
    "station",
    "station_ae_title",
    "scheduled_start",
    "scheduled_end",
    "expected_duration_minutes",
    "performing_physician",
    "description",
    "protocol_codes",
    "location",
    "pre_medication",
    "contrast_agent",
    "created_at",
    "updated_at",
]


class StepSerializer(_StepFieldsMixin):
    """A scheduled procedure step with the procedure, order and patient it belongs to."""

    requested_procedure = RequestedProcedureSummarySerializer(read_only=True)
    order = OrderSummarySerializer(source="requested_procedure.order", read_only=True)
    patient = PatientSummarySerializer(source="requested_procedure.order.patient", read_only=True)

    class Meta:
        model = ScheduledProcedureStep
        fields = [*STEP_FIELDS, "requested_procedure", "order", "patient"]
        read_only_fields = fields

    def to_representation(self, step: ScheduledProcedureStep) -> dict:
        """The same dict DRF's fields build, built directly from the step's row.

        The list endpoint reads rows with ``values_list`` (no model instances) and renders them
        with ``step_row_json``; a single step goes the same way through ``step_row``, so one
        mapping serves both. ``tests/api/test_steps.py`` checks it equals DRF's field-by-field
        output, and the schemathesis run checks it against the schema.
        """
        return step_row_json(step_row(step))

    def to_representation_by_fields(self, step: ScheduledProcedureStep) -> dict:
        """DRF's generic representation, kept to check the direct one against."""
        return super().to_representation(step)


#: One step as a flat row: name -> ORM path from ScheduledProcedureStep (one query with joins).
STEP_ROW: dict[str, str] = {
    "id": "pk",
    "sps_id": "sps_id",
    "status": "status",
    "status_reason": "status_reason",
    "modality": "modality",
    "station": "station_id",
    "station_ae_title": "station__ae_title",
    "scheduled_start": "scheduled_start",
    "scheduled_end": "scheduled_end",
    "expected_duration_minutes": "expected_duration_minutes",
    "performing_physician": "performing_physician",
    "description": "description",
    "protocol_codes": "protocol_codes",
    "location": "location",
    "pre_medication": "pre_medication",
    "contrast_agent": "contrast_agent",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "rp_id": "requested_procedure_id",
    "rp_requested_procedure_id": "requested_procedure__requested_procedure_id",
    "rp_study_instance_uid": "requested_procedure__study_instance_uid",
    "rp_description": "requested_procedure__description",
    "rp_code_value": "requested_procedure__code_value",
    "rp_code_scheme": "requested_procedure__code_scheme",
    "rp_code_meaning": "requested_procedure__code_meaning",
    "rp_priority": "requested_procedure__priority",
    "order_id": "requested_procedure__order_id",
    "order_accession_number": "requested_procedure__order__accession_number",
    "order_status": "requested_procedure__order__status",
    "order_priority": "requested_procedure__order__priority",
    "order_placer_order_number": "requested_procedure__order__placer_order_number",
    "patient_id": "requested_procedure__order__patient_id",
    "patient_patient_id": "requested_procedure__order__patient__patient_id",
    "patient_issuer": "requested_procedure__order__patient__issuer",
    "name_alphabetic": "requested_procedure__order__patient__name_alphabetic",
    "name_ideographic": "requested_procedure__order__patient__name_ideographic",
    "name_phonetic": "requested_procedure__order__patient__name_phonetic",
    "patient_birth_date": "requested_procedure__order__patient__birth_date",
    "patient_sex": "requested_procedure__order__patient__sex",
}
_STEP_ROW_NAMES = tuple(STEP_ROW)
_STEP_ROW_PATHS = tuple(STEP_ROW.values())


def step_rows(queryset) -> QuerySet:
    """``queryset`` of steps as flat row tuples (in ``STEP_ROW`` order): no model instances."""
    return queryset.values_list(*_STEP_ROW_PATHS)


def step_row(step: ScheduledProcedureStep) -> dict:
    """The ``STEP_ROW`` of a model instance (the one row ``step_rows`` would give)."""
    row = {}
    for name, path in STEP_ROW.items():
        value = step
        for part in path.split("__"):
            if value is None:
                break
            value = getattr(value, part)
        row[name] = value
    return row


def step_row_json(row: dict | tuple) -> dict:
    """A step row as the API's JSON object (the shape StepSerializer documents)."""
    if isinstance(row, tuple):
        row = dict(zip(_STEP_ROW_NAMES, row, strict=True))
    name = PersonName(row["name_alphabetic"], row["name_ideographic"], row["name_phonetic"])
    birth_date = row["patient_birth_date"]
    return {
        "id": row["id"],
        "sps_id": row["sps_id"],
        "status": row["status"],
        "status_reason": row["status_reason"],
        "allowed_transitions": sorted(allowed_step_transitions(row["status"])),
        "modality": row["modality"],
        "station": row["station"],
        "station_ae_title": row["station_ae_title"],
        "scheduled_start": _datetime(row["scheduled_start"]),
        "scheduled_end": _datetime(row["scheduled_end"]),
        "expected_duration_minutes": row["expected_duration_minutes"],
        "performing_physician": row["performing_physician"],
        "description": row["description"],
        "protocol_codes": [
            {
                "value": code.get("value", ""),
                "scheme": code.get("scheme", ""),
                "meaning": code.get("meaning", ""),
            }
            for code in row["protocol_codes"] or []
        ],
        "location": row["location"],
        "pre_medication": row["pre_medication"],
        "contrast_agent": row["contrast_agent"],
        "created_at": _datetime(row["created_at"]),
        "updated_at": _datetime(row["updated_at"]),
        "requested_procedure": {
            "id": row["rp_id"],
            "requested_procedure_id": row["rp_requested_procedure_id"],
            "study_instance_uid": row["rp_study_instance_uid"],
            "description": row["rp_description"],
            "code_value": row["rp_code_value"],
            "code_scheme": row["rp_code_scheme"],
            "code_meaning": row["rp_code_meaning"],
            "priority": row["rp_priority"],
        },
        "order": {
            "id": row["order_id"],
            "accession_number": row["order_accession_number"],
            "status": row["order_status"],
            "priority": row["order_priority"],
            "placer_order_number": row["order_placer_order_number"],
        },
        "patient": {
            "id": row["patient_id"],
            "patient_id": row["patient_patient_id"],
            "issuer": row["patient_issuer"],
            "name": str(name),
            "display_name": name.display(),
            "birth_date": birth_date.isoformat() if birth_date else None,
            "sex": row["patient_sex"],
        },
    }


def _datetime(value: dt.datetime | None) -> str | None:
    """As DRF's DateTimeField renders it: ISO 8601 in the current zone, UTC as ``Z``."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class NestedStepSerializer(_StepFieldsMixin):
    class Meta:
        model = ScheduledProcedureStep
        fields = STEP_FIELDS
        read_only_fields = fields


class StepScheduleSerializer(serializers.Serializer):
    start = serializers.DateTimeField(
        help_text="New start (ISO 8601); without an offset it is read in the department's zone."
    )
    station = serializers.PrimaryKeyRelatedField(
        queryset=Device.objects.filter(active=True),
        required=False,
        allow_null=True,
        help_text="Device id of the station; omitted: the step keeps its station.",
    )
    duration_minutes = serializers.IntegerField(min_value=1, max_value=24 * 60, required=False)

    def validate_start(self, value: dt.datetime) -> dt.datetime:
        return _representable(value)


class FreeSlotSerializer(serializers.Serializer):
    """One offer of the next-free-slot search; book it with ``POST steps/{id}/schedule/``."""

    station = serializers.IntegerField(source="station.pk")
    station_ae_title = serializers.CharField(source="station.ae_title")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    reserved = serializers.CharField(help_text="URGENT or INPATIENT when the slot is reserved")


class FreeSlotQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=50, default=5)
    after = serializers.DateTimeField(required=False)


class StepCheckInSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[StepStatus.ARRIVED, StepStatus.READY],
        default=StepStatus.ARRIVED,
        help_text="ARRIVED (patient at the desk) or READY (prepared for the exam).",
    )


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Why; kept in the audit trail.")

    def validate_reason(self, value: str) -> str:
        _no_control_characters(value, what="A reason")
        return value


class OrderCancelSerializer(CancelSerializer):
    discontinue = serializers.BooleanField(
        default=False,
        help_text="Report the order as discontinued (DC) rather than canceled (CA) to the HIS.",
    )


def _representable(value: dt.datetime) -> dt.datetime:
    """Refuse instants that cannot be stored in UTC or given an end time (year 1 or 9999)."""
    try:
        value.astimezone(dt.UTC)
        value + dt.timedelta(days=2)
        value - dt.timedelta(days=2)
    except OverflowError as exc:
        raise serializers.ValidationError("This date and time is out of range.") from exc
    return value


# --- orders -----------------------------------------------------------------------------------


class RequestedProcedureSerializer(serializers.ModelSerializer):
    steps = NestedStepSerializer(many=True, read_only=True)

    class Meta:
        model = RequestedProcedure
        fields = [
            "id",
            "requested_procedure_id",
            "study_instance_uid",
            "procedure_type",
            "description",
            "code_value",
            "code_scheme",
            "code_meaning",
            "priority",
            "transport_arrangements",
            "steps",
        ]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    patient = PatientSummarySerializer(read_only=True)
    procedures = RequestedProcedureSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "accession_number",
            "status",
            "status_reason",
            "priority",
            "source",
            "patient",
            "visit",
            "placer_order_number",
            "placer_issuer",
            "filler_order_number",
            "requesting_physician",
            "referring_physician",
            "requesting_service",
            "reason",
            "comments",
            "procedures",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProcedureRequestSerializer(serializers.Serializer):
    """One requested procedure of a new order, optionally with its first slot."""

    procedure_type = serializers.PrimaryKeyRelatedField(
        queryset=ProcedureType.objects.filter(active=True), help_text="Catalogue entry id."
    )
    scheduled_start = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Omitted: the step waits UNSCHEDULED (off the worklist) until it is booked.",
    )
    station = serializers.PrimaryKeyRelatedField(
        queryset=Device.objects.filter(active=True),
        required=False,
        allow_null=True,
        help_text="Device id; omitted with a start time: the procedure's first active station.",
    )
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    description = serializers.CharField(max_length=64, required=False, allow_blank=True)
    performing_physician = PersonNameField(required=False, allow_blank=True)
    transport_arrangements = serializers.CharField(max_length=64, required=False, allow_blank=True)

    def validate_scheduled_start(self, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else _representable(value)

    def validate(self, attrs: dict) -> dict:
        if attrs.get("station") is not None and attrs.get("scheduled_start") is None:
            raise serializers.ValidationError(
                {"scheduled_start": "A station is booked for a time: give scheduled_start too."}
            )
        return attrs


class OrderCreateSerializer(serializers.Serializer):
    patient = serializers.PrimaryKeyRelatedField(
        queryset=Patient.objects.filter(merged_into__isnull=True), help_text="Patient id."
    )
    procedures = ProcedureRequestSerializer(many=True, allow_empty=False, max_length=20)
    placer_order_number = serializers.CharField(max_length=64, required=False, allow_blank=True)
    placer_issuer = serializers.CharField(max_length=64, required=False, allow_blank=True)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.ROUTINE)
    requesting_physician = PersonNameField(required=False, allow_blank=True)
    referring_physician = PersonNameField(required=False, allow_blank=True)
    requesting_service = serializers.CharField(max_length=64, required=False, allow_blank=True)
    reason = serializers.CharField(max_length=64, required=False, allow_blank=True)
    comments = serializers.CharField(max_length=10240, required=False, allow_blank=True)


# --- configuration: devices and the procedure catalogue ----------------------------------------


class DeviceSerializer(serializers.ModelSerializer):
    ae_title = serializers.CharField(max_length=16, validators=[validate_ae_title])
    port = serializers.IntegerField(min_value=1, max_value=65535, required=False, allow_null=True)
    opens_at = WallClockTimeField(required=False, allow_null=True)
    closes_at = WallClockTimeField(required=False, allow_null=True)

    class Meta:
        model = Device
        fields = [
            "id",
            "ae_title",
            "kind",
            "host",
            "port",
            "modality",
            "station_name",
            "location",
            "description",
            "may_query_worklist",
            "may_send_mpps",
            "may_store",
            "certificate_subject",
            "restrict_to_own_steps",
            "character_set",
            "incoming_character_set",
            "name_profile",
            "allow_overbooking",
            "opens_at",
            "closes_at",
            "step_progress",
            "active",
        ]

    def validate_ae_title(self, value: str) -> str:
        value = validate_ae_title(value)
        clash = Device.objects.filter(ae_title=value)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError("A device with this AE title already exists.")
        return value

    def validate(self, attrs: dict) -> dict:
        opens = attrs.get("opens_at", getattr(self.instance, "opens_at", None))
        closes = attrs.get("closes_at", getattr(self.instance, "closes_at", None))
        if (opens is None) != (closes is None):
            raise serializers.ValidationError(
                {"closes_at": "Give both opening and closing times, or neither."}
            )
        if opens is not None and closes is not None and closes != dt.time(0) and closes <= opens:
            raise serializers.ValidationError({"closes_at": "The station closes after it opens."})
        return attrs


class OrderCodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProcedureOrderCode
        fields = ["code", "coding_system"]


class ProcedureTypeSerializer(serializers.ModelSerializer):
    protocol_codes = CodeSerializer(many=True, required=False)
    stations = serializers.PrimaryKeyRelatedField(
        queryset=Device.objects.all(), many=True, required=False, help_text="Device ids."
    )
    order_codes = OrderCodeSerializer(
        many=True, read_only=True, help_text="HL7 order codes (OBR-4) that map to this procedure."
    )
    default_duration_minutes = serializers.IntegerField(min_value=1, max_value=24 * 60)

    class Meta:
        model = ProcedureType
        fields = [
            "id",
            "code_value",
            "code_scheme",
            "code_meaning",
            "modality",
            "default_duration_minutes",
            "description",
            "protocol_codes",
            "stations",
            "order_codes",
            "active",
        ]
        # The (code_value, code_scheme) uniqueness is checked in validate() with a clear message.
        validators: list = []

    def validate(self, attrs: dict) -> dict:
        code = attrs.get("code_value", getattr(self.instance, "code_value", None))
        scheme = attrs.get("code_scheme", getattr(self.instance, "code_scheme", "L"))
        clash = ProcedureType.objects.filter(code_value=code, code_scheme=scheme)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError(
                {"code_value": f"The catalogue already has {code} in scheme {scheme}."}
            )
        return attrs


# --- audit ------------------------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor_type",
            "actor",
            "user",
            "action",
            "object_type",
            "object_id",
            "before",
            "after",
            "detail",
        ]
        read_only_fields = fields


class WhoAmISerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
