"""The IHE Scheduled Workflow objects ris keeps, with the DICOM attributes they feed.

Patient -> Visit; Patient -> Order (Imaging Service Request) -> RequestedProcedure ->
ScheduledProcedureStep. Field comments name the DICOM tag a field becomes on the worklist, so the
mapping module (``worklist/dicom.py``) and this file can be read side by side.
Status changes never happen here: they go through ``worklist.states`` and ``worklist.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from worklist.pn import PersonName


class CharacterSet(models.TextChoices):
    """Values of Specific Character Set (0008,0005) that ris can answer in."""

    UTF8 = "ISO_IR 192", "UTF-8 (ISO_IR 192)"
    LATIN1 = "ISO_IR 100", "Latin-1 (ISO_IR 100)"
    GB18030 = "GB18030", "GB18030"
    GB2312 = "ISO 2022 IR 58", "GB2312 (ISO 2022 IR 58)"
    ASCII = "ISO_IR 6", "ASCII (default repertoire)"


class Modality(models.TextChoices):
    CT = "CT", "CT"
    MR = "MR", "MR"
    US = "US", "US"
    CR = "CR", "CR"
    DX = "DX", "DX"
    MG = "MG", "MG"
    NM = "NM", "NM"
    PT = "PT", "PT"
    XA = "XA", "XA"
    RF = "RF", "RF"
    OT = "OT", "Other"


class Priority(models.TextChoices):
    """Requested Procedure Priority (0040,1003) defined terms."""

    STAT = "STAT", _("STAT")
    HIGH = "HIGH", _("High")
    ROUTINE = "ROUTINE", _("Routine")
    MEDIUM = "MEDIUM", _("Medium")
    LOW = "LOW", _("Low")


class Device(models.Model):
    """A DICOM application entity ris talks to: a modality (station) or a peer such as a PACS."""

    class Kind(models.TextChoices):
        MODALITY = "MODALITY", _("Modality")
        PACS = "PACS", _("PACS")
        OTHER = "OTHER", _("Other")

    ae_title = models.CharField(_("AE title"), max_length=16, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MODALITY)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    modality = models.CharField(max_length=16, choices=Modality.choices, blank=True)
    station_name = models.CharField(max_length=16, blank=True)  # (0040,0010)
    location = models.CharField(max_length=16, blank=True)  # (0040,0011)
    description = models.CharField(max_length=200, blank=True)
    may_query_worklist = models.BooleanField(default=True)
    # A device restricted to its own steps sees only steps whose station is its calling AE title.
    restrict_to_own_steps = models.BooleanField(default=False)
    character_set = models.CharField(
        max_length=20, choices=CharacterSet.choices, default=CharacterSet.UTF8
    )
    allow_overbooking = models.BooleanField(default=False)
    opens_at = models.TimeField(null=True, blank=True)
    closes_at = models.TimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    # The API account a web client of this device authenticates as (DICOMweb MWL-RS, MPPS-RS,
    # UPS-RS): over HTTP there is no calling AE title, so the account names the device and the
    # device's worklist rights, character set and restriction apply as for its C-FIND.
    api_user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("API user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="dicom_device",
    )

    class Meta:
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return self.ae_title


class ProcedureType(models.Model):
    """The department's procedure catalogue: what can be ordered and how it is scheduled."""

    code_value = models.CharField(max_length=16)  # (0008,0100) of (0032,1064)
    code_scheme = models.CharField(max_length=16, default="L")  # (0008,0102)
    code_meaning = models.CharField(max_length=64)  # (0008,0104)
    modality = models.CharField(max_length=16, choices=Modality.choices)
    default_duration_minutes = models.PositiveIntegerField(default=15)
    description = models.CharField(max_length=64, blank=True)  # (0032,1060) / (0040,0007)
    # Scheduled Protocol Code Sequence (0040,0008): [{"value", "scheme", "meaning"}, ...]
    protocol_codes = models.JSONField(default=list, blank=True)
    stations = models.ManyToManyField(Device, blank=True, related_name="procedure_types")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code_value"]
        constraints = [
            models.UniqueConstraint(
                fields=["code_value", "code_scheme"], name="uniq_procedure_code"
            )
        ]

    def __str__(self) -> str:
        return f"{self.code_value} {self.code_meaning}"


class ProcedureOrderCode(models.Model):
    """An HL7 order code (OBR-4.1, optionally with its coding system) that maps to a procedure."""

    code = models.CharField(max_length=64)
    coding_system = models.CharField(max_length=32, blank=True)
    procedure_type = models.ForeignKey(
        ProcedureType, on_delete=models.CASCADE, related_name="order_codes"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["code", "coding_system"], name="uniq_order_code")
        ]

    def __str__(self) -> str:
        return f"{self.code}^{self.coding_system}" if self.coding_system else self.code


class Patient(models.Model):
    class Sex(models.TextChoices):
        MALE = "M", _("Male")
        FEMALE = "F", _("Female")
        OTHER = "O", _("Other")
        UNKNOWN = "", _("Unknown")

    class Pregnancy(models.IntegerChoices):
        """Pregnancy Status (0010,21C0)."""

        NOT_PREGNANT = 1, _("Not pregnant")
        POSSIBLY_PREGNANT = 2, _("Possibly pregnant")
        DEFINITELY_PREGNANT = 3, _("Definitely pregnant")
        UNKNOWN = 4, _("Unknown")

    patient_id = models.CharField(_("patient ID"), max_length=64)  # (0010,0020)
    issuer = models.CharField(_("issuer of patient ID"), max_length=64, blank=True)  # (0010,0021)
    # Other Patient IDs Sequence (0010,1002): [{"id": ..., "issuer": ..., "type": ...}]
    other_ids = models.JSONField(default=list, blank=True)
    # Patient's Name (0010,0010), one column per PN component group so that each can be searched.
    name_alphabetic = models.CharField(max_length=200, blank=True)
    name_ideographic = models.CharField(max_length=200, blank=True)
    name_phonetic = models.CharField(max_length=200, blank=True)
    family_name = models.CharField(max_length=100, blank=True)
    given_name = models.CharField(max_length=100, blank=True)
    birth_date = models.DateField(null=True, blank=True)  # (0010,0030)
    sex = models.CharField(max_length=1, choices=Sex.choices, blank=True)  # (0010,0040)
    weight_kg = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    size_m = models.DecimalField(max_digits=4, decimal_places=2, null=True, blank=True)
    medical_alerts = models.CharField(max_length=64, blank=True)  # (0010,2000)
    allergies = models.CharField(max_length=64, blank=True)  # (0010,2110)
    pregnancy_status = models.PositiveSmallIntegerField(
        choices=Pregnancy.choices, null=True, blank=True
    )
    patient_state = models.CharField(max_length=64, blank=True)  # (0038,0500)
    special_needs = models.CharField(max_length=64, blank=True)  # (0038,0050)
    confidentiality = models.CharField(max_length=64, blank=True)  # (0040,3001)
    additional_history = models.TextField(blank=True)  # (0010,21B0)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["family_name", "given_name", "patient_id"]
        constraints = [
            models.UniqueConstraint(fields=["patient_id", "issuer"], name="uniq_patient_id_issuer")
        ]
        indexes = [
            models.Index(fields=["patient_id"], name="patient_id_idx"),
            models.Index(Upper("name_alphabetic"), name="patient_name_alpha_idx"),
            models.Index(fields=["name_ideographic"], name="patient_name_ideo_idx"),
            models.Index(Upper("name_phonetic"), name="patient_name_phon_idx"),
            models.Index(fields=["birth_date"], name="patient_birth_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.person_name} ({self.patient_id})"

    @property
    def person_name(self) -> PersonName:
        return PersonName(self.name_alphabetic, self.name_ideographic, self.name_phonetic)

    def set_person_name(self, name: PersonName | str) -> None:
        """Store a DICOM PN (``Wang^XiaoDong=王^小东=``) into the group and search columns."""
        pn = name if isinstance(name, PersonName) else PersonName.parse(name)
        self.name_alphabetic = pn.alphabetic
        self.name_ideographic = pn.ideographic
        self.name_phonetic = pn.phonetic
        first = pn.alphabetic or pn.ideographic or pn.phonetic
        components = first.split("^")
        self.family_name = components[0][:100]
        self.given_name = (components[1] if len(components) > 1 else "")[:100]


class Visit(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="visits")
    admission_id = models.CharField(max_length=64, blank=True)  # (0038,0010)
    patient_class = models.CharField(max_length=8, blank=True)  # PV1-2: I, O, E, ...
    assigned_location = models.CharField(max_length=64, blank=True)  # (0038,0300)
    referring_physician = models.CharField(max_length=200, blank=True)  # (0008,0090)
    admitted_at = models.DateTimeField(null=True, blank=True)
    discharged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["admission_id"], name="visit_admission_idx")]

    def __str__(self) -> str:
        return self.admission_id or f"visit {self.pk}"


class OrderStatus(models.TextChoices):
    """Order status as the HIS sees it (ORC-5)."""

    SCHEDULED = "SC", _("Scheduled")
    IN_PROGRESS = "IP", _("In progress")
    COMPLETED = "CM", _("Completed")
    DISCONTINUED = "DC", _("Discontinued")
    CANCELED = "CA", _("Canceled")


class Order(models.Model):
    """Imaging Service Request: what the referring side asked for."""

    class Source(models.TextChoices):
        HL7 = "HL7", "HL7"
        MANUAL = "MANUAL", _("Manual")
        API = "API", "API"
        IMPORT = "IMPORT", _("Import")

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="orders")
    visit = models.ForeignKey(
        Visit, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    placer_order_number = models.CharField(max_length=64, blank=True)  # (0040,2016)
    placer_issuer = models.CharField(max_length=64, blank=True)
    filler_order_number = models.CharField(max_length=64, blank=True)  # (0040,2017)
    accession_number = models.CharField(max_length=16, unique=True)  # (0008,0050)
    requesting_physician = models.CharField(max_length=200, blank=True)  # (0032,1032)
    referring_physician = models.CharField(max_length=200, blank=True)  # (0008,0090)
    requesting_service = models.CharField(max_length=64, blank=True)  # (0032,1033)
    reason = models.CharField(max_length=64, blank=True)  # (0040,1002)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.ROUTINE)
    comments = models.TextField(blank=True)  # (0040,2400)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.MANUAL)
    status = models.CharField(
        max_length=2, choices=OrderStatus.choices, default=OrderStatus.SCHEDULED
    )
    status_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Manual orders have no placer number; only HIS-placed ones must be unique.
            models.UniqueConstraint(
                fields=["placer_order_number", "placer_issuer"],
                condition=~models.Q(placer_order_number=""),
                name="uniq_placer_order",
            )
        ]
        indexes = [models.Index(fields=["status"], name="order_status_idx")]

    def __str__(self) -> str:
        return self.accession_number


class RequestedProcedure(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="procedures")
    procedure_type = models.ForeignKey(
        ProcedureType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_procedure_id = models.CharField(max_length=16, unique=True)  # (0040,1001)
    description = models.CharField(max_length=64, blank=True)  # (0032,1060)
    code_value = models.CharField(max_length=16, blank=True)  # (0032,1064)
    code_scheme = models.CharField(max_length=16, blank=True)
    code_meaning = models.CharField(max_length=64, blank=True)
    study_instance_uid = models.CharField(max_length=64, unique=True)  # (0020,000D)
    priority = models.CharField(max_length=8, choices=Priority.choices, default=Priority.ROUTINE)
    transport_arrangements = models.CharField(max_length=64, blank=True)  # (0040,1004)

    def __str__(self) -> str:
        return self.requested_procedure_id


class StepStatus(models.TextChoices):
    """Scheduled Procedure Step Status (0040,0020), plus UNSCHEDULED for steps awaiting a slot."""

    UNSCHEDULED = "UNSCHEDULED", _("Unscheduled")
    SCHEDULED = "SCHEDULED", _("Scheduled")
    ARRIVED = "ARRIVED", _("Arrived")
    READY = "READY", _("Ready")
    STARTED = "STARTED", _("Started")
    COMPLETED = "COMPLETED", _("Completed")
    DISCONTINUED = "DISCONTINUED", _("Discontinued")
    CANCELED = "CANCELED", _("Canceled")


class ScheduledProcedureStep(models.Model):
    requested_procedure = models.ForeignKey(
        RequestedProcedure, on_delete=models.CASCADE, related_name="steps"
    )
    sps_id = models.CharField(max_length=16, unique=True)  # (0040,0009)
    station = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.PROTECT, related_name="steps"
    )  # (0040,0001) from station.ae_title
    modality = models.CharField(max_length=16, choices=Modality.choices)  # (0008,0060)
    scheduled_start = models.DateTimeField(null=True, blank=True)  # (0040,0002)/(0040,0003)
    expected_duration_minutes = models.PositiveIntegerField(default=15)
    # Kept (not computed) so that overlap checks on a station are one indexed range query.
    scheduled_end = models.DateTimeField(null=True, blank=True)  # (0040,0004)/(0040,0005)
    performing_physician = models.CharField(max_length=200, blank=True)  # (0040,0006)
    description = models.CharField(max_length=64, blank=True)  # (0040,0007)
    protocol_codes = models.JSONField(default=list, blank=True)  # (0040,0008)
    location = models.CharField(max_length=16, blank=True)  # (0040,0011)
    pre_medication = models.CharField(max_length=64, blank=True)  # (0040,0012)
    contrast_agent = models.CharField(max_length=64, blank=True)  # (0032,1070)
    status = models.CharField(
        max_length=12, choices=StepStatus.choices, default=StepStatus.UNSCHEDULED
    )
    status_reason = models.CharField(max_length=200, blank=True)
    # Transaction UID (0008,1195) of the UPS performer that claimed this step as a workitem
    # (PS3.4 CC.1.1): only its holder may complete or cancel it; never returned in a response.
    ups_transaction_uid = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scheduled_start", "sps_id"]
        indexes = [
            # The worklist's query paths: a station asking for its day, a modality for a range.
            models.Index(fields=["station", "scheduled_start"], name="sps_station_start_idx"),
            models.Index(fields=["modality", "scheduled_start"], name="sps_modality_start_idx"),
            models.Index(fields=["status", "scheduled_start"], name="sps_status_start_idx"),
            models.Index(fields=["scheduled_start"], name="sps_start_idx"),
        ]

    def __str__(self) -> str:
        return self.sps_id


class AuditEvent(models.Model):
    """Who changed what, when, and from what to what: one row per domain change."""

    class ActorType(models.TextChoices):
        USER = "USER", _("User")
        AE = "AE", _("DICOM AE")
        HL7 = "HL7", _("HL7 sender")
        SYSTEM = "SYSTEM", _("System")

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=8, choices=ActorType.choices)
    actor = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type}"


class Counter(models.Model):
    """Named monotonic counters behind accession numbers and IDs (see ``worklist.identifiers``)."""

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
