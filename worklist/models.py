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

from worklist.charsets import IncomingCharacterSet
from worklist.pn import PersonName


class CharacterSet(models.TextChoices):
    """Values of Specific Character Set (0008,0005) that ris can answer in."""

    UTF8 = "ISO_IR 192", "UTF-8 (ISO_IR 192)"
    LATIN1 = "ISO_IR 100", "Latin-1 (ISO_IR 100)"
    GB18030 = "GB18030", "GB18030"
    GB2312 = "ISO 2022 IR 58", "GB2312 (ISO 2022 IR 58)"
    ASCII = "ISO_IR 6", "ASCII (default repertoire)"


class NameProfile(models.TextChoices):
    """Which Patient's Name groups a Device is sent (worklist.pn.NameProfile)."""

    ALL = "all", _("All name groups")
    ALPHABETIC = "alphabetic", _("Alphabetic group only (Pinyin)")
    IDEOGRAPHIC_FIRST = "ideographic_first", _("Ideographic group first")


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


class StepProgress(models.TextChoices):
    """What moves a modality's steps to STARTED and COMPLETED (``worklist.states.progress_mode``).

    Many CR, DX, US and older CT/MR send no MPPS: their steps follow the images instead (the
    first instance starts the step, a study stable for ``RIS_STUDY_STABLE_SECONDS`` completes it).
    """

    DEFAULT = "", _("Department default")
    MPPS = "MPPS", _("MPPS only")
    IMAGES = "IMAGES", _("Images only")
    BOTH = "BOTH", _("MPPS and images (MPPS wins)")


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
    # Per service, as the issue of who may do what on the ris AE is per SOP class: MPPS
    # N-CREATE/N-SET and C-STORE to the gateway (refused 0x0124 "not authorized" when off).
    may_send_mpps = models.BooleanField(_("may send MPPS"), default=True)
    may_store = models.BooleanField(_("may store images"), default=True)
    #: The subject of the TLS client certificate that authenticates this device (worklist.peers,
    #: e.g. "CN=CT1,O=Radiology"): when set, the AE title is admitted only over TLS with that
    #: certificate, and that certificate only as this AE title.
    certificate_subject = models.CharField(_("certificate subject"), max_length=255, blank=True)
    # A device restricted to its own steps sees only steps whose station is its calling AE title.
    restrict_to_own_steps = models.BooleanField(default=False)
    character_set = models.CharField(
        max_length=20, choices=CharacterSet.choices, default=CharacterSet.UTF8
    )
    name_profile = models.CharField(
        _("name profile"), max_length=20, choices=NameProfile.choices, default=NameProfile.ALL
    )
    #: What the device's own text (queries, MPPS, images) is really in when it sends it
    #: unlabelled or mislabelled (worklist.charsets).
    incoming_character_set = models.CharField(
        _("incoming character set"),
        max_length=20,
        choices=IncomingCharacterSet.choices,
        default=IncomingCharacterSet.AS_LABELLED,
        blank=True,
    )
    allow_overbooking = models.BooleanField(default=False)
    opens_at = models.TimeField(null=True, blank=True)
    closes_at = models.TimeField(null=True, blank=True)
    #: What moves its steps: MPPS, images, or both (empty: RIS_STEP_PROGRESS_DEFAULT).
    step_progress = models.CharField(
        _("step status from"), max_length=8, choices=StepProgress.choices, blank=True, default=""
    )
    #: The grid free slots are offered on (next-free-slot search): starts at multiples of this
    #: from the opening time.
    slot_minutes = models.PositiveSmallIntegerField(default=15)
    #: Kept by ``worklist.scheduling`` when opening periods or exceptions are saved: without any,
    #: a booking checks only opens_at/closes_at and costs no query (the HL7 path counts them).
    has_schedule = models.BooleanField(default=False, editable=False)
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
        verbose_name = _("device")
        verbose_name_plural = _("devices")
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
    #: The exam gives contrast medium: a patient's two contrast exams need the site's
    #: RIS_CONTRAST_GAP_MINUTES between them (next-free-slot search).
    contrast = models.BooleanField(default=False)
    active = models.BooleanField(default=True)

    class Meta:
        verbose_name = _("procedure type")
        verbose_name_plural = _("procedure types")
        ordering = ["code_value"]
        constraints = [
            models.UniqueConstraint(
                fields=["code_value", "code_scheme"], name="uniq_procedure_code"
            )
        ]

    def __str__(self) -> str:
        return f"{self.code_value} {self.code_meaning}"


class Weekday(models.IntegerChoices):
    """ISO weekday numbers as ``datetime.date.weekday()`` gives them (Monday 0)."""

    MONDAY = 0, _("Monday")
    TUESDAY = 1, _("Tuesday")
    WEDNESDAY = 2, _("Wednesday")
    THURSDAY = 3, _("Thursday")
    FRIDAY = 4, _("Friday")
    SATURDAY = 5, _("Saturday")
    SUNDAY = 6, _("Sunday")


class OpeningPeriod(models.Model):
    """One period a station is open on a weekday (its weekly slot template).

    Several periods on one weekday leave the gaps between them closed: a lunch break, a weekly
    maintenance hour. A station with no period at all falls back to ``opens_at``/``closes_at``
    every day (or is open around the clock without those).
    """

    station = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="opening_periods")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens_at = models.TimeField()
    closes_at = models.TimeField()

    class Meta:
        ordering = ["station", "weekday", "opens_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(closes_at__gt=models.F("opens_at")), name="opening_period_order"
            )
        ]

    def __str__(self) -> str:
        hours = f"{self.opens_at:%H:%M}-{self.closes_at:%H:%M}"
        return f"{self.station} {self.get_weekday_display()} {hours}"


class SlotReservation(models.Model):
    """A weekly period of a station kept for some cases: the next-free-slot search offers it
    only to those (``worklist.scheduling.may_use``)."""

    class Kind(models.TextChoices):
        URGENT = "URGENT", _("Urgent cases")
        INPATIENT = "INPATIENT", _("Inpatients")

    station = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="reservations")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    starts_at = models.TimeField()
    ends_at = models.TimeField()
    kind = models.CharField(max_length=10, choices=Kind.choices)

    class Meta:
        ordering = ["station", "weekday", "starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="reservation_order"
            )
        ]

    def __str__(self) -> str:
        return f"{self.station} {self.get_weekday_display()} {self.starts_at:%H:%M} {self.kind}"


class ScheduleException(models.Model):
    """A dated period a station cannot take exams: a holiday, the station down, a maintenance
    window. Exams already booked in it are listed for rebooking (``scheduling.affected_steps``)."""

    class Kind(models.TextChoices):
        HOLIDAY = "HOLIDAY", _("Holiday")
        DOWN = "DOWN", _("Station down")
        MAINTENANCE = "MAINTENANCE", _("Maintenance")

    station = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="exceptions")
    starts = models.DateTimeField()
    ends = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["starts", "station"]
        indexes = [models.Index(fields=["station", "starts"], name="exception_station_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends__gt=models.F("starts")), name="exception_order"
            )
        ]

    def __str__(self) -> str:
        return f"{self.station} {self.kind} {self.starts:%Y-%m-%d %H:%M}"


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


class StationRule(models.Model):
    """Which station a step goes to when its catalogue entry names none (admin-editable).

    Rules are tried by ``position``; the first active rule whose every filled-in criterion
    matches chooses the station. An empty criterion matches anything. Without a matching rule
    the modality's default (``ModalityDefaultStation``) applies; without one the step stays
    UNSCHEDULED for the front desk: a step is never served with an empty Scheduled Station AE
    Title (0040,0001), a Type 1 attribute (PS3.4 K.6.1.2.2).
    """

    position = models.PositiveIntegerField(_("position"), default=0)
    active = models.BooleanField(_("active"), default=True)
    procedure_code = models.CharField(
        _("procedure code"), max_length=16, blank=True, help_text=_("catalogue code value")
    )
    modality = models.CharField(
        _("modality"), max_length=16, choices=Modality.choices, blank=True,
        help_text=_("OBR-24 or IPC-5, else the catalogue's"),
    )
    patient_class = models.CharField(
        _("patient class"), max_length=8, blank=True, help_text=_("PV1-2: I, O, E ...")
    )
    department = models.CharField(
        _("ordering department"), max_length=64, blank=True,
        help_text=_("requesting service (ORC-17)"),
    )
    location = models.CharField(
        _("patient location"), max_length=64, blank=True,
        help_text=_("the start of the assigned location (PV1-3)"),
    )
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices, blank=True)
    station = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="routing_rules", verbose_name=_("station")
    )

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("station routing rule")
        verbose_name_plural = _("station routing rules")

    def __str__(self) -> str:
        return f"#{self.position} -> {self.station}"


class ModalityDefaultStation(models.Model):
    """The station of a modality's steps that no routing rule placed."""

    modality = models.CharField(_("modality"), max_length=16, choices=Modality.choices, unique=True)
    station = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="+", verbose_name=_("station")
    )

    class Meta:
        ordering = ["modality"]
        verbose_name = _("default station of a modality")
        verbose_name_plural = _("default stations of modalities")

    def __str__(self) -> str:
        return f"{self.modality} -> {self.station}"


class BirthDatePrecision(models.TextChoices):
    DAY = "", _("Exact date")
    MONTH = "M", _("Year and month only")
    YEAR = "Y", _("Year only")


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
    #: The alphabetic group is the Pinyin ris derived from the ideographic one (worklist.pn), not a
    #: romanisation somebody typed or the HIS sent: only a derived one is re-derived on updates.
    name_alphabetic_derived = models.BooleanField(default=False)
    family_name = models.CharField(max_length=100, blank=True)
    given_name = models.CharField(max_length=100, blank=True)
    birth_date = models.DateField(null=True, blank=True)  # (0010,0030)
    #: How much of ``birth_date`` is known: HL7 DTM may be a year (``1950``) or a year and month
    #: (``195003``), and such a birth date is stored as its first day with the precision here,
    #: so that it is never shown or sent as an exact day (a birth year is a birth year).
    birth_date_precision = models.CharField(
        max_length=1, choices=BirthDatePrecision.choices, blank=True, default=""
    )
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
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
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


class PatientNameKey(models.Model):
    """One key a patient is found by (worklist.pn.search_keys: Pinyin with and without spaces,
    initials, the Hanzi, the given name alone), matched by prefix through its index on SQLite and
    PostgreSQL alike. Kept in step with the patient's name by a post_save receiver
    (worklist.receivers), so every way a Patient row is written keeps its keys."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="name_keys")
    #: db_index: on PostgreSQL Django adds a varchar_pattern_ops index too, which LIKE 'prefix%'
    #: uses whatever the database collation; SQLite uses the plain index for a range.
    key = models.CharField(max_length=64, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "key"], name="uniq_patient_name_key")
        ]

    def __str__(self) -> str:
        return self.key


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
        verbose_name = _("visit")
        verbose_name_plural = _("visits")
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
        verbose_name = _("order")
        verbose_name_plural = _("orders")
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

    class Meta:
        verbose_name = _("requested procedure")
        verbose_name_plural = _("requested procedures")

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
    #: Taken off the Modality Worklist by housekeeping (overdue, RIS_STEP_OVERDUE_ACTION=REMOVE)
    #: without a status change: the order keeps the step; booking it again puts it back.
    off_worklist_at = models.DateTimeField(null=True, blank=True)
    # Transaction UID (0008,1195) of the UPS performer that claimed this step as a workitem
    # (PS3.4 CC.1.1): only its holder may complete or cancel it; never returned in a response.
    ups_transaction_uid = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("scheduled procedure step")
        verbose_name_plural = _("scheduled procedure steps")
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
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
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
