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
    LATIN1 = "ISO_IR 100", _("Latin-1 (ISO_IR 100)")
    GB18030 = "GB18030", "GB18030"
    GB2312 = "ISO 2022 IR 58", "GB2312 (ISO 2022 IR 58)"
    ASCII = "ISO_IR 6", _("ASCII (default repertoire)")


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
    OT = "OT", _("Other")


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
    kind = models.CharField(
        max_length=10, choices=Kind.choices, default=Kind.MODALITY, verbose_name=_("kind")
    )
    host = models.CharField(max_length=255, blank=True, verbose_name=_("host"))
    port = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("port"))
    modality = models.CharField(
        max_length=16, choices=Modality.choices, blank=True, verbose_name=_("modality")
    )
    station_name = models.CharField(  # (0040,0010)
        max_length=16, blank=True, verbose_name=_("station name")
    )
    location = models.CharField(  # (0040,0011)
        max_length=16, blank=True, verbose_name=_("location")
    )
    description = models.CharField(max_length=200, blank=True, verbose_name=_("description"))
    may_query_worklist = models.BooleanField(default=True, verbose_name=_("may query the worklist"))
    # Per service, as the issue of who may do what on the ris AE is per SOP class: MPPS
    # N-CREATE/N-SET and C-STORE to the gateway (refused 0x0124 "not authorized" when off).
    may_send_mpps = models.BooleanField(_("may send MPPS"), default=True)
    may_store = models.BooleanField(_("may store images"), default=True)
    #: The subject of the TLS client certificate that authenticates this device (worklist.peers,
    #: e.g. "CN=CT1,O=Radiology"): when set, the AE title is admitted only over TLS with that
    #: certificate, and that certificate only as this AE title.
    certificate_subject = models.CharField(_("certificate subject"), max_length=255, blank=True)
    # A device restricted to its own steps sees only steps whose station is its calling AE title.
    restrict_to_own_steps = models.BooleanField(default=False, verbose_name=_("only its own steps"))
    character_set = models.CharField(
        max_length=20, choices=CharacterSet.choices, default=CharacterSet.UTF8,
        verbose_name=_("character set"),
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
    allow_overbooking = models.BooleanField(default=False, verbose_name=_("allow overbooking"))
    opens_at = models.TimeField(null=True, blank=True, verbose_name=_("opens at"))
    closes_at = models.TimeField(null=True, blank=True, verbose_name=_("closes at"))
    #: What moves its steps: MPPS, images, or both (empty: RIS_STEP_PROGRESS_DEFAULT).
    step_progress = models.CharField(
        _("step status from"), max_length=8, choices=StepProgress.choices, blank=True, default=""
    )
    #: The grid free slots are offered on (next-free-slot search): starts at multiples of this
    #: from the opening time.
    slot_minutes = models.PositiveSmallIntegerField(
        default=15, verbose_name=_("slot length (minutes)")
    )
    #: Kept by ``worklist.scheduling`` when opening periods or exceptions are saved: without any,
    #: a booking checks only opens_at/closes_at and costs no query (the HL7 path counts them).
    has_schedule = models.BooleanField(
        default=False, editable=False, verbose_name=_("has a booking calendar")
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))
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

    code_value = models.CharField(  # (0008,0100) of (0032,1064)
        max_length=16, verbose_name=_("code")
    )
    code_scheme = models.CharField(  # (0008,0102)
        max_length=16, default="L", verbose_name=_("coding scheme")
    )
    code_meaning = models.CharField(max_length=64, verbose_name=_("code meaning"))  # (0008,0104)
    modality = models.CharField(max_length=16, choices=Modality.choices, verbose_name=_("modality"))
    default_duration_minutes = models.PositiveIntegerField(
        default=15, verbose_name=_("default duration (minutes)")
    )
    description = models.CharField(  # (0032,1060) / (0040,0007)
        max_length=64, blank=True, verbose_name=_("description")
    )
    # Scheduled Protocol Code Sequence (0040,0008): [{"value", "scheme", "meaning"}, ...]
    protocol_codes = models.JSONField(default=list, blank=True, verbose_name=_("protocol codes"))
    stations = models.ManyToManyField(
        Device, blank=True, related_name="procedure_types", verbose_name=_("stations")
    )
    #: The exam gives contrast medium: a patient's two contrast exams need the site's
    #: RIS_CONTRAST_GAP_MINUTES between them (next-free-slot search).
    contrast = models.BooleanField(default=False, verbose_name=_("contrast"))
    active = models.BooleanField(default=True, verbose_name=_("active"))

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

    station = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="opening_periods", verbose_name=_("station")
    )
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices, verbose_name=_("weekday"))
    opens_at = models.TimeField(verbose_name=_("opens at"))
    closes_at = models.TimeField(verbose_name=_("closes at"))

    class Meta:
        verbose_name = _("opening period")
        verbose_name_plural = _("opening periods")
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

    station = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="reservations", verbose_name=_("station")
    )
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices, verbose_name=_("weekday"))
    starts_at = models.TimeField(verbose_name=_("starts at"))
    ends_at = models.TimeField(verbose_name=_("ends at"))
    kind = models.CharField(max_length=10, choices=Kind.choices, verbose_name=_("kind"))

    class Meta:
        verbose_name = _("slot reservation")
        verbose_name_plural = _("slot reservations")
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

    station = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="exceptions", verbose_name=_("station")
    )
    starts = models.DateTimeField(verbose_name=_("starts"))
    ends = models.DateTimeField(verbose_name=_("ends"))
    kind = models.CharField(max_length=12, choices=Kind.choices, verbose_name=_("kind"))
    reason = models.CharField(max_length=200, blank=True, verbose_name=_("reason"))

    class Meta:
        verbose_name = _("schedule exception")
        verbose_name_plural = _("schedule exceptions")
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

    code = models.CharField(max_length=64, verbose_name=_("order code"))
    coding_system = models.CharField(max_length=32, blank=True, verbose_name=_("coding system"))
    procedure_type = models.ForeignKey(
        ProcedureType, on_delete=models.CASCADE, related_name="order_codes",
        verbose_name=_("procedure type"),
    )

    class Meta:
        verbose_name = _("HL7 order code")
        verbose_name_plural = _("HL7 order codes")
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
    other_ids = models.JSONField(default=list, blank=True, verbose_name=_("other patient IDs"))
    # Patient's Name (0010,0010), one column per PN component group so that each can be searched.
    name_alphabetic = models.CharField(
        max_length=200, blank=True, verbose_name=_("name (alphabetic)")
    )
    name_ideographic = models.CharField(
        max_length=200, blank=True, verbose_name=_("name (ideographic)")
    )
    name_phonetic = models.CharField(max_length=200, blank=True, verbose_name=_("name (phonetic)"))
    #: The alphabetic group is the Pinyin ris derived from the ideographic one (worklist.pn), not a
    #: romanisation somebody typed or the HIS sent: only a derived one is re-derived on updates.
    name_alphabetic_derived = models.BooleanField(
        default=False, verbose_name=_("Pinyin suggested by ris")
    )
    family_name = models.CharField(max_length=100, blank=True, verbose_name=_("family name"))
    given_name = models.CharField(max_length=100, blank=True, verbose_name=_("given name"))
    birth_date = models.DateField(  # (0010,0030)
        null=True, blank=True, verbose_name=_("birth date")
    )
    #: How much of ``birth_date`` is known: HL7 DTM may be a year (``1950``) or a year and month
    #: (``195003``), and such a birth date is stored as its first day with the precision here,
    #: so that it is never shown or sent as an exact day (a birth year is a birth year).
    birth_date_precision = models.CharField(
        max_length=1, choices=BirthDatePrecision.choices, blank=True, default="",
        verbose_name=_("birth date precision"),
    )
    #: Patient's Age (0010,1010) as stated at registration (an Age String, ``045Y``), for a
    #: patient whose birth date nobody gave: it is served instead of a made-up birth date
    #: (worklist.age).
    age = models.CharField(_("age"), max_length=4, blank=True)
    sex = models.CharField(  # (0010,0040)
        max_length=1, choices=Sex.choices, blank=True, verbose_name=_("sex")
    )
    weight_kg = models.DecimalField(
        max_digits=6, decimal_places=2, null=True, blank=True, verbose_name=_("weight (kg)")
    )
    size_m = models.DecimalField(
        max_digits=4, decimal_places=2, null=True, blank=True, verbose_name=_("height (m)")
    )
    medical_alerts = models.CharField(  # (0010,2000)
        max_length=64, blank=True, verbose_name=_("medical alerts")
    )
    allergies = models.CharField(  # (0010,2110)
        max_length=64, blank=True, verbose_name=_("allergies")
    )
    pregnancy_status = models.PositiveSmallIntegerField(
        choices=Pregnancy.choices, null=True, blank=True,
        verbose_name=_("pregnancy status"),
    )
    patient_state = models.CharField(  # (0038,0500)
        max_length=64, blank=True, verbose_name=_("patient state")
    )
    special_needs = models.CharField(  # (0038,0050)
        max_length=64, blank=True, verbose_name=_("special needs")
    )
    confidentiality = models.CharField(  # (0040,3001)
        max_length=64, blank=True, verbose_name=_("confidentiality")
    )
    additional_history = models.TextField(  # (0010,21B0)
        blank=True, verbose_name=_("additional history")
    )
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_from",
        verbose_name=_("merged into"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

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

    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="name_keys", verbose_name=_("patient")
    )
    #: db_index: on PostgreSQL Django adds a varchar_pattern_ops index too, which LIKE 'prefix%'
    #: uses whatever the database collation; SQLite uses the plain index for a range.
    key = models.CharField(max_length=64, db_index=True, verbose_name=_("search key"))

    class Meta:
        verbose_name = _("patient name search key")
        verbose_name_plural = _("patient name search keys")
        constraints = [
            models.UniqueConstraint(fields=["patient", "key"], name="uniq_patient_name_key")
        ]

    def __str__(self) -> str:
        return self.key


class Visit(models.Model):
    patient = models.ForeignKey(
        Patient, on_delete=models.CASCADE, related_name="visits", verbose_name=_("patient")
    )
    admission_id = models.CharField(  # (0038,0010)
        max_length=64, blank=True, verbose_name=_("admission ID")
    )
    patient_class = models.CharField(  # PV1-2: I, O, E, ...
        max_length=8, blank=True, verbose_name=_("patient class")
    )
    assigned_location = models.CharField(  # (0038,0300)
        max_length=64, blank=True, verbose_name=_("assigned location")
    )
    referring_physician = models.CharField(  # (0008,0090)
        max_length=200, blank=True, verbose_name=_("referring physician")
    )
    admitted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("admitted at"))
    discharged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("discharged at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

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

    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="orders", verbose_name=_("patient")
    )
    visit = models.ForeignKey(
        Visit, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders",
        verbose_name=_("visit"),
    )
    placer_order_number = models.CharField(  # (0040,2016)
        max_length=64, blank=True, verbose_name=_("placer order number")
    )
    placer_issuer = models.CharField(max_length=64, blank=True, verbose_name=_("placer issuer"))
    filler_order_number = models.CharField(  # (0040,2017)
        max_length=64, blank=True, verbose_name=_("filler order number")
    )
    accession_number = models.CharField(  # (0008,0050)
        max_length=16, unique=True, verbose_name=_("accession number")
    )
    requesting_physician = models.CharField(  # (0032,1032)
        max_length=200, blank=True, verbose_name=_("requesting physician")
    )
    referring_physician = models.CharField(  # (0008,0090)
        max_length=200, blank=True, verbose_name=_("referring physician")
    )
    requesting_service = models.CharField(  # (0032,1033)
        max_length=64, blank=True, verbose_name=_("requesting service")
    )
    reason = models.CharField(  # (0040,1002)
        max_length=64, blank=True, verbose_name=_("reason for the exam")
    )
    priority = models.CharField(
        max_length=8, choices=Priority.choices, default=Priority.ROUTINE, verbose_name=_("priority")
    )
    comments = models.TextField(blank=True, verbose_name=_("comments"))  # (0040,2400)
    source = models.CharField(
        max_length=8, choices=Source.choices, default=Source.MANUAL, verbose_name=_("source")
    )
    status = models.CharField(
        max_length=2, choices=OrderStatus.choices, default=OrderStatus.SCHEDULED,
        verbose_name=_("status"),
    )
    status_reason = models.CharField(max_length=200, blank=True, verbose_name=_("status reason"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

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
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="procedures", verbose_name=_("order")
    )
    procedure_type = models.ForeignKey(
        ProcedureType, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("procedure type"),
    )
    requested_procedure_id = models.CharField(  # (0040,1001)
        max_length=16, unique=True, verbose_name=_("requested procedure ID")
    )
    description = models.CharField(  # (0032,1060)
        max_length=64, blank=True, verbose_name=_("description")
    )
    code_value = models.CharField(max_length=16, blank=True, verbose_name=_("code"))  # (0032,1064)
    code_scheme = models.CharField(max_length=16, blank=True, verbose_name=_("coding scheme"))
    code_meaning = models.CharField(max_length=64, blank=True, verbose_name=_("code meaning"))
    study_instance_uid = models.CharField(  # (0020,000D)
        max_length=64, unique=True, verbose_name=_("Study Instance UID")
    )
    priority = models.CharField(
        max_length=8, choices=Priority.choices, default=Priority.ROUTINE, verbose_name=_("priority")
    )
    transport_arrangements = models.CharField(  # (0040,1004)
        max_length=64, blank=True, verbose_name=_("transport arrangements")
    )

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
        RequestedProcedure, on_delete=models.CASCADE, related_name="steps",
        verbose_name=_("requested procedure"),
    )
    sps_id = models.CharField(max_length=16, unique=True, verbose_name=_("SPS ID"))  # (0040,0009)
    station = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.PROTECT, related_name="steps",
        verbose_name=_("station"),
    )  # (0040,0001) from station.ae_title
    modality = models.CharField(  # (0008,0060)
        max_length=16, choices=Modality.choices, verbose_name=_("modality")
    )
    scheduled_start = models.DateTimeField(  # (0040,0002)/(0040,0003)
        null=True, blank=True, verbose_name=_("scheduled start")
    )
    expected_duration_minutes = models.PositiveIntegerField(
        default=15, verbose_name=_("expected duration (minutes)")
    )
    # Kept (not computed) so that overlap checks on a station are one indexed range query.
    scheduled_end = models.DateTimeField(  # (0040,0004)/(0040,0005)
        null=True, blank=True, verbose_name=_("scheduled end")
    )
    performing_physician = models.CharField(  # (0040,0006)
        max_length=200, blank=True, verbose_name=_("performing physician")
    )
    description = models.CharField(  # (0040,0007)
        max_length=64, blank=True, verbose_name=_("description")
    )
    protocol_codes = models.JSONField(  # (0040,0008)
        default=list, blank=True, verbose_name=_("protocol codes")
    )
    location = models.CharField(  # (0040,0011)
        max_length=16, blank=True, verbose_name=_("location")
    )
    pre_medication = models.CharField(  # (0040,0012)
        max_length=64, blank=True, verbose_name=_("pre-medication")
    )
    contrast_agent = models.CharField(  # (0032,1070)
        max_length=64, blank=True, verbose_name=_("contrast agent")
    )
    status = models.CharField(
        max_length=12, choices=StepStatus.choices, default=StepStatus.UNSCHEDULED,
        verbose_name=_("status"),
    )
    status_reason = models.CharField(max_length=200, blank=True, verbose_name=_("status reason"))
    #: Taken off the Modality Worklist by housekeeping (overdue, RIS_STEP_OVERDUE_ACTION=REMOVE)
    #: without a status change: the order keeps the step; booking it again puts it back.
    off_worklist_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("left the worklist at")
    )
    # Transaction UID (0008,1195) of the UPS performer that claimed this step as a workitem
    # (PS3.4 CC.1.1): only its holder may complete or cancel it; never returned in a response.
    ups_transaction_uid = models.CharField(
        max_length=64, blank=True, verbose_name=_("UPS transaction UID")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

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
            # The booking's overlap check: the station's few long steps (services._first_clash).
            models.Index(
                fields=["station", "expected_duration_minutes"], name="sps_station_duration_idx"
            ),
        ]

    def __str__(self) -> str:
        return self.sps_id


class UpsSubscription(models.Model):
    """An AE's subscription to UPS event reports (PS3.4 CC.2.3): to one workitem (``step``) or
    global (no ``step``: every workitem, now and later, optionally filtered by matching keys).

    A workitem unsubscribed while its AE holds a global subscription is kept as a row with
    ``subscribed`` False, so the global one does not bring it back. ``suspended_at`` is a global
    subscription's suspension (PS3.4 CC.2.3.2): workitems created after it are no longer
    included, the earlier ones still are. Events go out from the audit trail (dicomweb.events).
    """

    ae_title = models.CharField(max_length=16, verbose_name=_("AE title"))
    step = models.ForeignKey(
        "ScheduledProcedureStep", null=True, blank=True, on_delete=models.CASCADE,
        related_name="ups_subscriptions",
        verbose_name=_("step"),
    )
    subscribed = models.BooleanField(default=True, verbose_name=_("subscribed"))
    #: Deletion Lock (PS3.4 CC.2.3.1): ris never deletes a step, so it only records the wish.
    deletion_lock = models.BooleanField(default=False, verbose_name=_("deletion lock"))
    #: A filtered global subscription's UPS matching keys (``{"ProcedureStepState": ...}``).
    filter_keys = models.JSONField(null=True, blank=True, verbose_name=_("filter keys"))
    suspended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("suspended at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("UPS subscription")
        verbose_name_plural = _("UPS subscriptions")
        constraints = [
            models.UniqueConstraint(fields=["ae_title", "step"], name="ups_subscription_unique"),
            models.UniqueConstraint(
                fields=["ae_title"], condition=models.Q(step__isnull=True),
                name="ups_global_subscription_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ae_title} -> {self.step_id or 'global'}"


class AuditEvent(models.Model):
    """Who changed what, when, and from what to what: one row per domain change."""

    class ActorType(models.TextChoices):
        USER = "USER", _("User")
        AE = "AE", _("DICOM AE")
        HL7 = "HL7", _("HL7 sender")
        SYSTEM = "SYSTEM", _("System")

    at = models.DateTimeField(auto_now_add=True, db_index=True, verbose_name=_("time"))
    actor_type = models.CharField(
        max_length=8, choices=ActorType.choices, verbose_name=_("actor type")
    )
    actor = models.CharField(max_length=200, verbose_name=_("actor"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        verbose_name=_("user"),
    )
    action = models.CharField(max_length=64, verbose_name=_("action"))
    object_type = models.CharField(max_length=64, verbose_name=_("record type"))
    object_id = models.CharField(max_length=64, verbose_name=_("record ID"))
    before = models.JSONField(null=True, blank=True, verbose_name=_("before"))
    after = models.JSONField(null=True, blank=True, verbose_name=_("after"))
    detail = models.TextField(blank=True, verbose_name=_("detail"))

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type}"


class Counter(models.Model):
    """Named monotonic counters behind accession numbers and IDs (see ``worklist.identifiers``)."""

    name = models.CharField(max_length=32, primary_key=True, verbose_name=_("name"))
    value = models.BigIntegerField(default=0, verbose_name=_("value"))

    class Meta:
        verbose_name = _("counter")
        verbose_name_plural = _("counters")

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

