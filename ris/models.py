"""Service-level state: listener liveness, the HL7 message store, HL7 peers, the outbound queue."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Heartbeat(models.Model):
    """The last time a background listener (the scheduler) proved it was alive."""

    name = models.CharField(max_length=32, primary_key=True)
    beat_at = models.DateTimeField()
    detail = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%H:%M:%S}"


class HL7Sender(models.Model):
    """An HIS interface that sends to ris (MSH-3/MSH-4), with what its messages leave out.

    Many Chinese HIS feeds send GB 18030 text with an empty MSH-18; the default character set here
    decodes them without changing the sender.
    """

    application = models.CharField(max_length=64, help_text="MSH-3 sending application")
    facility = models.CharField(
        max_length=64, blank=True, help_text="MSH-4 sending facility (empty: any facility)"
    )
    default_charset = models.CharField(
        max_length=32, blank=True, help_text="MSH-18 value assumed when a message leaves it empty"
    )
    derive_control_id = models.BooleanField(
        default=False,
        help_text="For senders that leave MSH-10 empty: use a control ID derived from the message "
        "bytes (a resend of the same bytes is then recognised). Off: an empty MSH-10 gets AR 101",
    )
    description = models.CharField(max_length=200, blank=True)
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
        PROCESSED = "PROCESSED", "processed"
        ERROR = "ERROR", "error (AE: kept for reprocessing)"
        REJECTED = "REJECTED", "rejected (AR: the sender may resend)"
        DUPLICATE = "DUPLICATE", "duplicate (original ACK re-sent)"

    sender = models.CharField(max_length=140, help_text="MSH-3|MSH-4")
    #: HL7 v2.7+ gives MSH-10 a conformance length of 199 (earlier versions 20, but feeds send
    #: longer): stored whole, so that the resend look-up compares what was sent.
    control_id = models.CharField(max_length=199, help_text="MSH-10")
    message_type = models.CharField(max_length=32, blank=True)
    version = models.CharField(max_length=12, blank=True)
    charset = models.CharField(max_length=32, blank=True)
    peer = models.CharField(max_length=100, blank=True)
    raw = models.BinaryField()
    size = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices)
    ack_code = models.CharField(max_length=2, blank=True)
    ack = models.BinaryField(default=b"")
    error_code = models.CharField(max_length=8, blank=True)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    reprocess_count = models.PositiveIntegerField(default=0)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="duplicates"
    )
    patient = models.ForeignKey(
        "worklist.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    order = models.ForeignKey(
        "worklist.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: Everything the message changed: [{"type": "order", "id": 3, "key": "A000000012"}, ...]
    links = models.JSONField(default=list, blank=True)

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

    name = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    version = models.CharField(max_length=8, choices=Version.choices, default=Version.V251)
    charset = models.CharField(
        max_length=32, default="UNICODE UTF-8", help_text="MSH-18 of the messages sent"
    )
    sending_application = models.CharField(max_length=64, default="RIS")
    sending_facility = models.CharField(max_length=64, blank=True)
    receiving_application = models.CharField(max_length=64, blank=True)
    receiving_facility = models.CharField(max_length=64, blank=True)
    use_tls = models.BooleanField(default=False)
    ack_timeout_seconds = models.PositiveIntegerField(default=30)
    send_order_status = models.BooleanField(default=True)
    #: IHE Scheduled Workflow.b (RAD-4 Procedure Scheduled / RAD-13 Procedure Update): this
    #: receiver (an Image Manager, a reporting system) gets OMI^O23 with the IPC identifiers ris
    #: assigned, for every new, changed and cancelled order, instead of ORM/OMG status messages.
    swf_b_omi = models.BooleanField(
        "SWF.b OMI^O23",
        default=False,
        help_text="IHE Scheduled Workflow.b: send OMI^O23 (v2.5.1, with IPC) for new, changed and "
        "cancelled orders instead of order status messages",
    )
    active = models.BooleanField(default=True)

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

    kind = models.CharField(max_length=64)
    destination = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(default=dict)
    #: Jobs with the same key are delivered one after another in id order (e.g. "order:42").
    ordering_key = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=20)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    result = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

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

    destination = models.CharField(max_length=100, primary_key=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.destination} failing since {self.failing_since}" if self.failing_since else (
            self.destination
        )
