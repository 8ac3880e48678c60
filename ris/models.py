"""Service-level state: listener liveness, the HL7 message store, HL7 peers, the outbound queue."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Heartbeat(models.Model):
    """The last time a background listener (the scheduler) proved it was alive."""

    name = models.CharField(max_length=32, primary_key=True, verbose_name=_("listener"))
    beat_at = models.DateTimeField(verbose_name=_("last heartbeat"))
    detail = models.CharField(max_length=200, blank=True, verbose_name=_("detail"))

    class Meta:
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%H:%M:%S}"


class HL7Sender(models.Model):
    """An HIS interface that sends to ris (MSH-3/MSH-4), with what its messages leave out.

    Many Chinese HIS feeds send GB 18030 text with an empty MSH-18; the default character set here
    decodes them without changing the sender.
    """

    application = models.CharField(
        max_length=64, help_text=_("MSH-3 sending application"),
        verbose_name=_("sending application"),
    )
    facility = models.CharField(
        max_length=64, blank=True, help_text=_("MSH-4 sending facility (empty: any facility)"),
        verbose_name=_("sending facility"),
    )
    default_charset = models.CharField(
        max_length=32,
        blank=True,
        help_text=_("MSH-18 value assumed when a message leaves it empty"),
        verbose_name=_("default character set"),
    )
    derive_control_id = models.BooleanField(
        default=False,
        help_text=_(
            "For senders that leave MSH-10 empty: use a control ID derived from the message "
            "bytes (a resend of the same bytes is then recognised). Off: an empty MSH-10 gets "
            "AR 101"
        ),
        verbose_name=_("derive a missing control ID"),
    )
    #: Original mode only: in enhanced mode MSH-16 says whether an application acknowledgement
    #: is wanted, and it always carries the response group.
    application_response = models.BooleanField(
        _("application response"),
        default=False,
        help_text=_(
            "Answer orders with ORR^O02 / ORG^O20 / ORI^O24 carrying the filler order number, "
            "accession number and identifiers ris assigned, instead of a bare ACK (original "
            "acknowledgement mode; in enhanced mode MSH-16 decides)"
        ),
    )
    description = models.CharField(max_length=200, blank=True, verbose_name=_("description"))
    certificate_subject = models.CharField(
        _("certificate subject"), max_length=255, blank=True,
        help_text=_("Subject of the MLLP TLS client certificate of this sender (CN=...,O=...): "
                    "when set, its messages are accepted only over that certificate, and that "
                    "certificate only for this sender"),
    )

    class Meta:
        verbose_name = _("HL7 sender")
        verbose_name_plural = _("HL7 senders")
        constraints = [
            models.UniqueConstraint(fields=["application", "facility"], name="uniq_hl7_sender")
        ]

    def __str__(self) -> str:
        return f"{self.application}|{self.facility}" if self.facility else self.application


class InboundMessage(models.Model):
    """Every HL7 message received, raw, with the ACK it got and what it changed.

    (sender, control ID) is unique among processed and error messages: it is the idempotency key
    that gives a re-sent message its original ACK without applying it twice.
    """

    class Status(models.TextChoices):
        PROCESSED = "PROCESSED", _("processed")
        ERROR = "ERROR", _("error (AE: kept for reprocessing)")
        REJECTED = "REJECTED", _("rejected (AR: the sender may resend)")
        DUPLICATE = "DUPLICATE", _("duplicate (original ACK re-sent)")

    sender = models.CharField(
        max_length=140,
        help_text=_("MSH-3|MSH-4: the sending application and facility"),
        verbose_name=_("sender"),
    )
    #: HL7 v2.7+ gives MSH-10 a conformance length of 199 (earlier versions 20, but feeds send
    #: longer): stored whole, so that the resend look-up compares what was sent.
    control_id = models.CharField(
        max_length=199,
        help_text=_("MSH-10 as the sender wrote it"),
        verbose_name=_("message control ID"),
    )
    message_type = models.CharField(max_length=32, blank=True, verbose_name=_("message type"))
    version = models.CharField(max_length=12, blank=True, verbose_name=_("HL7 version"))
    charset = models.CharField(max_length=32, blank=True, verbose_name=_("character set"))
    peer = models.CharField(max_length=100, blank=True, verbose_name=_("network peer"))
    raw = models.BinaryField(verbose_name=_("message bytes"))
    size = models.PositiveIntegerField(default=0, verbose_name=_("size (bytes)"))
    status = models.CharField(max_length=10, choices=Status.choices, verbose_name=_("status"))
    ack_code = models.CharField(max_length=2, blank=True, verbose_name=_("acknowledgement code"))
    ack = models.BinaryField(default=b"", verbose_name=_("acknowledgement"))
    error_code = models.CharField(max_length=8, blank=True, verbose_name=_("error code"))
    error = models.TextField(blank=True, verbose_name=_("error"))
    received_at = models.DateTimeField(default=timezone.now, verbose_name=_("received at"))
    processed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("processed at"))
    reprocess_count = models.PositiveIntegerField(default=0, verbose_name=_("times reprocessed"))
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="duplicates",
        verbose_name=_("duplicate of"),
    )
    patient = models.ForeignKey(
        "worklist.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("patient"),
    )
    order = models.ForeignKey(
        "worklist.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        verbose_name=_("order"),
    )
    #: Everything the message changed: [{"type": "order", "id": 3, "key": "A000000012"}, ...]
    links = models.JSONField(default=list, blank=True, verbose_name=_("linked records"))

    class Meta:
        verbose_name = _("inbound HL7 message")
        verbose_name_plural = _("inbound HL7 messages")
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "control_id"],
                # Rejected (AR) messages were not processed: a resend is a new attempt.
                condition=~models.Q(status__in=["DUPLICATE", "REJECTED"]),
                name="uniq_hl7_inbound_control_id",
            )
        ]
        indexes = [
            models.Index(fields=["status", "id"], name="hl7_inbound_status_idx"),
            models.Index(fields=["received_at"], name="hl7_inbound_received_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.sender} {self.control_id} {self.message_type} {self.status}"


class HL7Destination(models.Model):
    """An HIS receiver ris sends order status messages to, in the HL7 version it speaks."""

    class Version(models.TextChoices):
        V23 = "2.3", "2.3 (ORM^O01)"
        V231 = "2.3.1", "2.3.1 (ORM^O01)"
        V24 = "2.4", "2.4 (ORM^O01)"
        V25 = "2.5", "2.5 (OMG^O19)"
        V251 = "2.5.1", "2.5.1 (OMG^O19)"

    name = models.CharField(max_length=64, unique=True, verbose_name=_("name"))
    host = models.CharField(max_length=255, verbose_name=_("host"))
    port = models.PositiveIntegerField(verbose_name=_("port"))
    version = models.CharField(
        max_length=8, choices=Version.choices, default=Version.V251, verbose_name=_("HL7 version")
    )
    charset = models.CharField(
        max_length=32, default="UNICODE UTF-8", help_text=_("MSH-18 of the messages sent"),
        verbose_name=_("character set"),
    )
    sending_application = models.CharField(
        max_length=64, default="RIS", verbose_name=_("sending application")
    )
    sending_facility = models.CharField(
        max_length=64, blank=True, verbose_name=_("sending facility")
    )
    receiving_application = models.CharField(
        max_length=64, blank=True, verbose_name=_("receiving application")
    )
    receiving_facility = models.CharField(
        max_length=64, blank=True, verbose_name=_("receiving facility")
    )
    use_tls = models.BooleanField(default=False, verbose_name=_("use TLS"))
    ack_timeout_seconds = models.PositiveIntegerField(
        default=30, verbose_name=_("acknowledgement timeout (seconds)")
    )
    send_order_status = models.BooleanField(default=True, verbose_name=_("send order status"))
    #: IHE Scheduled Workflow.b (RAD-4 Procedure Scheduled / RAD-13 Procedure Update): this
    #: receiver (an Image Manager, a reporting system) gets OMI^O23 with the IPC identifiers ris
    #: assigned, for every new, changed and cancelled order, instead of ORM/OMG status messages.
    swf_b_omi = models.BooleanField(
        default=False,
        help_text=_(
            "IHE Scheduled Workflow.b: send OMI^O23 (v2.5.1, with IPC) for new, changed and "
            "cancelled orders instead of order status messages"
        ),
        verbose_name=_("send OMI orders (SWF.b)"),
    )
    #: An archive or PACS that keeps its own copy of the patient (dcm4chee-arc and most
    #: archives take ADT): every identity change ris applies reaches it as ADT (A08 update,
    #: A40 merge, A47 identifier change, A24 link, A37 unlink), whoever caused it.
    send_patient_updates = models.BooleanField(
        _("ADT patient updates"),
        default=False,
        help_text=_(
            "Forward every patient change as ADT: A08 demographics, A40 merge, A47 identifier "
            "change, A24 / A37 link and unlink (for archives and PACS that store patients)"
        ),
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name = _("HL7 destination")
        verbose_name_plural = _("HL7 destinations")
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port}, v{self.version})"

    @property
    def message_type(self) -> str:
        """ORM^O01 up to v2.4; OMG^O19 from v2.5, where ORM was withdrawn for imaging orders;
        OMI^O23 for an IHE SWF.b receiver."""
        if self.swf_b_omi:
            return "OMI^O23^OMI_O23"
        return "OMG^O19^OMG_O19" if self.version >= "2.5" else "ORM^O01"


class OutboundJob(models.Model):
    """One message to deliver to a peer (HIS, PACS): the durable queue of ris.outbound_queue."""

    class State(models.TextChoices):
        PENDING = "PENDING", _("pending")
        IN_PROGRESS = "IN_PROGRESS", _("in progress")
        DONE = "DONE", _("delivered")
        #: Out of attempts or refused: it still holds its ordering key (the later jobs of the
        #: same order wait) until it is retried or superseded.
        FAILED = "FAILED", _("failed (holds its order: retry or supersede)")
        #: Marked by staff as replaced by a later message: never sent, releases its key.
        SUPERSEDED = "SUPERSEDED", _("superseded (not sent)")

    kind = models.CharField(max_length=64, verbose_name=_("kind"))
    destination = models.CharField(max_length=100, blank=True, verbose_name=_("destination"))
    payload = models.JSONField(default=dict, verbose_name=_("payload"))
    #: Jobs with the same key are delivered one after another in id order (e.g. "order:42").
    ordering_key = models.CharField(max_length=100, blank=True, verbose_name=_("ordering key"))
    state = models.CharField(
        max_length=12, choices=State.choices, default=State.PENDING, verbose_name=_("state")
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=_("attempts"))
    max_attempts = models.PositiveIntegerField(default=20, verbose_name=_("maximum attempts"))
    next_attempt_at = models.DateTimeField(default=timezone.now, verbose_name=_("next attempt at"))
    last_error = models.TextField(blank=True, verbose_name=_("last error"))
    result = models.TextField(blank=True, verbose_name=_("result"))
    created_at = models.DateTimeField(default=timezone.now, verbose_name=_("created at"))
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("claimed at"))
    claimed_by = models.CharField(max_length=100, blank=True, verbose_name=_("claimed by"))
    finished_at = models.DateTimeField(null=True, blank=True, verbose_name=_("finished at"))

    class Meta:
        verbose_name = _("outbound job")
        verbose_name_plural = _("outbound jobs")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="outbound_due_idx"),
            models.Index(fields=["ordering_key", "state", "id"], name="outbound_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.destination} #{self.pk} {self.state}"


class OutboundPeer(models.Model):
    """The delivery health of one outbound destination (an HIS, a PACS), across all workers.

    ``failing_since`` is set by the first failed attempt after a success and cleared by the next
    success; ``alerted_at`` is set when the alert (``ris.outbound_queue.check_alerts``) was logged,
    so a destination that stays down is logged at ERROR once, not once per attempt.
    """

    destination = models.CharField(max_length=100, primary_key=True, verbose_name=_("destination"))
    failing_since = models.DateTimeField(null=True, blank=True, verbose_name=_("failing since"))
    last_error = models.TextField(blank=True, verbose_name=_("last error"))
    last_success_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last success at"))
    alerted_at = models.DateTimeField(null=True, blank=True, verbose_name=_("alerted at"))

    class Meta:
        verbose_name = _("outbound peer")
        verbose_name_plural = _("outbound peers")

    def __str__(self) -> str:
        return f"{self.destination} failing since {self.failing_since}" if self.failing_since else (
            self.destination
        )


class UserPreference(models.Model):
    """What one user chose for themselves: the UI language, the board's modality.

    A department runs in its default language (``RIS_LANGUAGE``); a visiting radiologist or an
    engineer from the vendor reads the UI in theirs, wherever they log in, without changing it
    for the front desk sharing the workstation (a cookie would follow the browser, not the
    person). Written only through ``ris.accounts``.
    """

    user = models.OneToOneField(
        "auth.User", on_delete=models.CASCADE, related_name="preference",
        verbose_name=_("user"),
    )
    #: One of settings.LANGUAGES; empty: the department's default.
    language = models.CharField(_("language"), max_length=16, blank=True)
    #: The modality the user's worklist board showed last (``board_modality_set``): the board
    #: opens on it at any workstation.
    board_modality = models.CharField(_("board modality"), max_length=16, blank=True)

    class Meta:
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language or '-'}"
