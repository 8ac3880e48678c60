"""PACS destinations, the gateway's spool and delivery records, storage commitment, availability.

A received instance is one ``SpooledInstance`` (its file in the spool) with one ``InstanceDelivery``
per destination that takes images. A delivery goes PENDING -> SENT (the PACS answered C-STORE
Success) -> COMMITTED (the PACS took responsibility in a storage commitment report) or STORED
(destination without storage commitment). The spool file is deleted only when every delivery of
the instance is final and the retention time has passed; the rows stay (counts, audit).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from worklist.models import ScheduledProcedureStep


class PacsDestination(models.Model):
    """A PACS (or any archive) that ris forwards MPPS and/or images to and queries for studies."""

    name = models.CharField(max_length=64, unique=True, verbose_name=_("name"))
    ae_title = models.CharField(_("AE title"), max_length=16)
    host = models.CharField(max_length=255, verbose_name=_("host"))
    port = models.PositiveIntegerField(verbose_name=_("port"))
    #: Calling AE title ris uses towards this PACS (empty: RIS_AE_TITLE). The PACS sends its
    #: storage commitment reports to the AE it knows under this title.
    calling_ae_title = models.CharField(
        max_length=16, blank=True, verbose_name=_("calling AE title")
    )
    send_mpps = models.BooleanField(_("forward MPPS"), default=True)
    send_images = models.BooleanField(_("forward images"), default=True)
    storage_commitment = models.BooleanField(
        default=True, help_text=_("Ask for storage commitment; spool files wait for it."),
        verbose_name=_("storage commitment"),
    )
    query_availability = models.BooleanField(
        default=True, help_text=_("Ask this PACS (C-FIND) which studies of ris it holds."),
        verbose_name=_("query availability"),
    )
    #: The archive applies IHE IOCM rejection notes (Key Object Selection, CID 7011 titles): a
    #: study linked to another order reaches it under new UIDs with a note rejecting the old
    #: copies; other destinations get the corrected copies under the same UIDs.
    iocm = models.BooleanField(
        _("IOCM rejection notes"),
        default=False,
        help_text=_("The archive hides instances named in an IHE IOCM rejection note."),
    )
    use_tls = models.BooleanField(_("TLS"), default=False)
    timeout_seconds = models.PositiveIntegerField(default=30, verbose_name=_("timeout (seconds)"))
    #: Seconds to keep the association open after N-ACTION for a report on the same association
    #: (PS3.4 J.3.3); 0 when the PACS always reports on a new association (Orthanc does).
    commitment_wait_seconds = models.PositiveIntegerField(
        default=0, verbose_name=_("commitment wait (seconds)")
    )
    active = models.BooleanField(default=True, verbose_name=_("active"))

    class Meta:
        verbose_name_plural = _("PACS destinations")
        ordering = ["name"]
        verbose_name = _("PACS destination")

    def __str__(self) -> str:
        return f"{self.name} ({self.ae_title}@{self.host}:{self.port})"


class SpooledInstance(models.Model):
    """One composite instance received by the storage gateway, or made by ris from one."""

    class Origin(models.TextChoices):
        RECEIVED = "RECEIVED", _("received from a modality")
        #: A study linked to another order, under new UIDs, for IOCM destinations.
        CORRECTION = "CORRECTION", _("corrected copy (new UIDs)")
        #: The IOCM Key Object Selection that rejects the copies a correction replaces.
        REJECTION_NOTE = "REJECTION_NOTE", _("IOCM rejection note")

    sop_instance_uid = models.CharField(
        max_length=64, unique=True, verbose_name=_("SOP Instance UID")
    )
    sop_class_uid = models.CharField(max_length=64, verbose_name=_("SOP Class UID"))
    transfer_syntax_uid = models.CharField(max_length=64, verbose_name=_("Transfer Syntax UID"))
    study_instance_uid = models.CharField(
        max_length=64, db_index=True, verbose_name=_("Study Instance UID")
    )
    series_instance_uid = models.CharField(max_length=64, verbose_name=_("Series Instance UID"))
    #: Relative to the spool directory; empty once the file was purged.
    path = models.CharField(max_length=255, blank=True, verbose_name=_("file path"))
    size = models.PositiveBigIntegerField(default=0, verbose_name=_("size (bytes)"))
    calling_ae_title = models.CharField(
        max_length=16, blank=True, verbose_name=_("calling AE title")
    )
    step = models.ForeignKey(
        ScheduledProcedureStep,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="gateway_instances",
        verbose_name=_("step"),
    )
    #: False: no order matched; forwarded unchanged and listed for staff.
    matched = models.BooleanField(default=False, verbose_name=_("matched"))
    match_note = models.CharField(max_length=200, blank=True, verbose_name=_("match note"))
    #: Attributes changed to the order's: {"PatientID": ["old", "new"], ...}
    coerced = models.JSONField(default=dict, blank=True, verbose_name=_("attributes corrected"))
    received_count = models.PositiveIntegerField(default=1, verbose_name=_("times received"))
    received_at = models.DateTimeField(default=timezone.now, verbose_name=_("received at"))
    purged_at = models.DateTimeField(null=True, blank=True, verbose_name=_("purged at"))
    #: What the modality sent (before coercion): the exceptions list shows and filters on it.
    patient_id = models.CharField(max_length=64, blank=True, verbose_name=_("patient ID"))
    patient_name = models.CharField(max_length=200, blank=True, verbose_name=_("patient name"))
    accession_number = models.CharField(
        max_length=16, blank=True, verbose_name=_("accession number")
    )
    modality = models.CharField(max_length=16, blank=True, verbose_name=_("modality"))
    origin = models.CharField(
        max_length=16, choices=Origin.choices, default=Origin.RECEIVED, verbose_name=_("origin")
    )
    #: When staff linked the instance's study to its step (reconciliation): later instances of
    #: the study follow that link (``services.match_step``).
    linked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("linked at"))
    #: For a CORRECTION: the received instance it is a corrected copy of.
    corrects = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="corrections",
        verbose_name=_("corrects"),
    )

    class Meta:
        verbose_name = _("spooled instance")
        verbose_name_plural = _("spooled instances")
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["matched", "received_at"], name="fwd_instance_matched_idx"),
            models.Index(fields=["purged_at"], name="fwd_instance_purged_idx"),
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class CommitmentRequest(models.Model):
    """One Storage Commitment N-ACTION (a Transaction UID) sent to a PACS."""

    class State(models.TextChoices):
        REQUESTED = "REQUESTED", _("waiting for the report")
        SUCCESS = "SUCCESS", _("all committed")
        PARTIAL = "PARTIAL", _("some failed (re-sent)")
        EXPIRED = "EXPIRED", _("no report in time (asked again)")

    transaction_uid = models.CharField(
        max_length=64, unique=True, verbose_name=_("Transaction UID")
    )
    destination = models.ForeignKey(
        PacsDestination, on_delete=models.CASCADE, verbose_name=_("PACS destination")
    )
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.REQUESTED, verbose_name=_("state")
    )
    instance_count = models.PositiveIntegerField(default=0, verbose_name=_("instances"))
    failed_count = models.PositiveIntegerField(default=0, verbose_name=_("failed instances"))
    requested_at = models.DateTimeField(default=timezone.now, verbose_name=_("requested at"))
    reported_at = models.DateTimeField(null=True, blank=True, verbose_name=_("reported at"))
    #: How the report came: "same association" or "new association from <AE>".
    report_via = models.CharField(max_length=100, blank=True, verbose_name=_("report received via"))

    class Meta:
        verbose_name = _("storage commitment request")
        verbose_name_plural = _("storage commitment requests")
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "requested_at"], name="fwd_commit_state_idx")]

    def __str__(self) -> str:
        return f"{self.transaction_uid} {self.state}"


class InstanceDelivery(models.Model):
    """The delivery of one spooled instance to one destination."""

    class State(models.TextChoices):
        PENDING = "PENDING", _("to send")
        SENT = "SENT", _("stored, waiting for commitment")
        COMMITTED = "COMMITTED", _("committed by the PACS")
        STORED = "STORED", _("stored (no commitment asked)")
        FAILED = "FAILED", _("refused by the PACS")
        #: Replaced by a corrected copy under new UIDs and rejected by an IOCM note: never
        #: sent (again) under the old identity.
        WITHDRAWN = "WITHDRAWN", _("withdrawn (rejected by an IOCM note)")

    instance = models.ForeignKey(
        SpooledInstance, on_delete=models.CASCADE, related_name="deliveries",
        verbose_name=_("instance"),
    )
    destination = models.ForeignKey(
        PacsDestination, on_delete=models.CASCADE, verbose_name=_("PACS destination")
    )
    state = models.CharField(
        max_length=10, choices=State.choices, default=State.PENDING, verbose_name=_("state")
    )
    #: Study the delivery belongs to (copied: the store job selects by destination and study).
    study_instance_uid = models.CharField(max_length=64, verbose_name=_("Study Instance UID"))
    commitment = models.ForeignKey(
        CommitmentRequest, null=True, blank=True, on_delete=models.SET_NULL,
        verbose_name=_("storage commitment request"),
    )
    store_count = models.PositiveIntegerField(default=0, verbose_name=_("times sent"))
    last_status = models.CharField(max_length=120, blank=True, verbose_name=_("last DICOM status"))
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("sent at"))
    committed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("committed at"))

    class Meta:
        verbose_name = _("instance delivery")
        verbose_name_plural = _("instance deliveries")
        constraints = [
            models.UniqueConstraint(fields=["instance", "destination"], name="uniq_fwd_delivery")
        ]
        indexes = [
            models.Index(
                fields=["destination", "study_instance_uid", "state"], name="fwd_delivery_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} -> {self.destination_id} {self.state}"


FINAL_DELIVERY_STATES = frozenset(
    {
        InstanceDelivery.State.COMMITTED,
        InstanceDelivery.State.STORED,
        InstanceDelivery.State.WITHDRAWN,
    }
)


class StepImages(models.Model):
    """What ris knows of a step's images: received by the gateway, and found at the PACS."""

    step = models.OneToOneField(
        ScheduledProcedureStep, on_delete=models.CASCADE, related_name="images",
        verbose_name=_("step"),
    )
    received_series = models.PositiveIntegerField(default=0, verbose_name=_("series received"))
    received_instances = models.PositiveIntegerField(
        default=0, verbose_name=_("instances received")
    )
    last_received_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("last received at")
    )
    #: "Images at PACS": the study was found there (C-FIND), with its counts.
    pacs_destination = models.CharField(
        max_length=64, blank=True, verbose_name=_("PACS destination")
    )
    pacs_series = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("series in the PACS")
    )
    pacs_instances = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=_("instances in the PACS")
    )
    pacs_confirmed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("confirmed by the PACS at")
    )
    pacs_checked_at = models.DateTimeField(null=True, blank=True, verbose_name=_("PACS checked at"))
    #: When the PACS's instance count last changed (first found, or grew): with
    #: ``last_received_at``, the last sign of a new instance, from which a study is "stable".
    pacs_changed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("PACS changed at"))

    class Meta:
        verbose_name = _("images of a step")
        verbose_name_plural = _("step images")

    def __str__(self) -> str:
        return f"{self.step_id}: {self.received_instances} received, {self.pacs_instances} at PACS"

    @property
    def at_pacs(self) -> bool:
        return self.pacs_confirmed_at is not None

    @property
    def last_new_instance_at(self):
        """The latest arrival of a new instance, at the gateway or at the PACS (or None)."""
        moments = [m for m in (self.last_received_at, self.pacs_changed_at) if m is not None]
        return max(moments) if moments else None


class PacsOrphanStudy(models.Model):
    """A study found at a PACS (C-FIND by study date) whose Study Instance UID and Accession
    Number belong to no order of ris: images of an exam nobody ordered, or keyed in wrong."""

    destination = models.CharField(max_length=64, verbose_name=_("PACS destination"))
    study_instance_uid = models.CharField(max_length=64, verbose_name=_("Study Instance UID"))
    accession_number = models.CharField(
        max_length=16, blank=True, verbose_name=_("accession number")
    )
    patient_id = models.CharField(max_length=64, blank=True, verbose_name=_("patient ID"))
    patient_name = models.CharField(max_length=200, blank=True, verbose_name=_("patient name"))
    study_date = models.DateField(null=True, blank=True, verbose_name=_("study date"))
    modalities = models.CharField(max_length=64, blank=True, verbose_name=_("modalities"))
    description = models.CharField(max_length=64, blank=True, verbose_name=_("description"))
    instances = models.PositiveIntegerField(null=True, blank=True, verbose_name=_("instances"))
    first_seen_at = models.DateTimeField(default=timezone.now, verbose_name=_("first seen at"))
    last_seen_at = models.DateTimeField(default=timezone.now, verbose_name=_("last seen at"))
    #: Set when a later query found it matching an order (or it left the PACS).
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=_("resolved at"))

    class Meta:
        verbose_name = _("PACS study without an order")
        verbose_name_plural = _("PACS studies without an order")
        constraints = [
            models.UniqueConstraint(
                fields=["destination", "study_instance_uid"], name="uniq_pacs_orphan_study"
            )
        ]
        indexes = [models.Index(fields=["resolved_at", "study_date"], name="pacs_orphan_open_idx")]

    def __str__(self) -> str:
        return f"{self.destination}: {self.study_instance_uid}"
