"""Modality Performed Procedure Steps: what a modality reports it actually did.

A PPS is kept as the modality sent it (the merged N-CREATE + N-SET dataset as pydicom JSON, so the
PACS forwarder can relay it unchanged) plus the parsed fields ris searches and shows. It is linked
to the scheduled steps it performed (many-to-many: one PPS may cover grouped procedures, several
PPS may belong to one step). A PPS that could not be linked, or whose steps could not follow it,
is an *exception* for staff to reconcile. All writes go through ``mpps.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from worklist.models import ScheduledProcedureStep


class PPSStatus(models.TextChoices):
    """Performed Procedure Step Status (0040,0252) enumerated values."""

    IN_PROGRESS = "IN PROGRESS", _("In progress")
    COMPLETED = "COMPLETED", _("Completed")
    DISCONTINUED = "DISCONTINUED", _("Discontinued")


FINAL_PPS_STATUSES = frozenset({PPSStatus.COMPLETED, PPSStatus.DISCONTINUED})


class Reconciliation(models.TextChoices):
    """Whether a PPS is tied to the scheduled workflow, or needs staff to tie it."""

    MATCHED = "MATCHED", _("Matched to its scheduled steps")
    #: Exception: no Scheduled Step Attributes item named a known step (unscheduled or emergency
    #: acquisition, or a typo at the modality).
    UNMATCHED = "UNMATCHED", _("Unmatched (no scheduled step)")
    #: Exception: linked, but a step could not follow the PPS (e.g. it was cancelled).
    CONFLICT = "CONFLICT", _("Linked, step status conflict")
    #: Was an exception; staff linked it to an order or step.
    LINKED = "LINKED", _("Linked by staff")
    #: Was an exception; staff decided it belongs to no order (test or QA acquisition).
    DISMISSED = "DISMISSED", _("Dismissed by staff")


EXCEPTION_STATES = frozenset({Reconciliation.UNMATCHED, Reconciliation.CONFLICT})


class PerformedProcedureStep(models.Model):
    sop_instance_uid = models.CharField(_("SOP instance UID"), max_length=64, unique=True)
    status = models.CharField(  # (0040,0252)
        max_length=12, choices=PPSStatus.choices, default=PPSStatus.IN_PROGRESS,
        verbose_name=_("status"),
    )
    pps_id = models.CharField(_("PPS ID"), max_length=16)  # (0040,0253)
    #: The association's calling AE title (who sent it); may differ from the station's own AE.
    calling_ae_title = models.CharField(
        max_length=16, blank=True, verbose_name=_("calling AE title")
    )
    station_ae_title = models.CharField(  # (0040,0241)
        max_length=16, verbose_name=_("station AE title")
    )
    station_name = models.CharField(  # (0040,0242)
        max_length=16, blank=True, verbose_name=_("station name")
    )
    location = models.CharField(  # (0040,0243)
        max_length=16, blank=True, verbose_name=_("location")
    )
    modality = models.CharField(max_length=16, verbose_name=_("modality"))  # (0008,0060)
    started_at = models.DateTimeField(  # (0040,0244)/(0040,0245), department time zone
        verbose_name=_("started at")
    )
    ended_at = models.DateTimeField(  # (0040,0250)/(0040,0251)
        null=True, blank=True, verbose_name=_("ended at")
    )
    description = models.CharField(  # (0040,0254)
        max_length=64, blank=True, verbose_name=_("description")
    )
    type_description = models.CharField(  # (0040,0255)
        max_length=64, blank=True, verbose_name=_("type description")
    )
    comments = models.TextField(blank=True, verbose_name=_("comments"))  # (0040,0280)
    study_id = models.CharField(  # (0020,0010)
        max_length=16, blank=True, verbose_name=_("study ID")
    )
    # As the modality reported the patient (0010,0010)/(0010,0020): may differ from the order's.
    patient_name = models.CharField(max_length=200, blank=True, verbose_name=_("patient name"))
    patient_id = models.CharField(max_length=64, blank=True, verbose_name=_("patient ID"))
    # Procedure Code Sequence (0008,1032) and Performed Protocol Code Sequence (0040,0260):
    # [{"value", "scheme", "meaning"}, ...]
    procedure_codes = models.JSONField(default=list, blank=True, verbose_name=_("procedure codes"))
    protocol_codes = models.JSONField(default=list, blank=True, verbose_name=_("protocol codes"))
    # PPS Discontinuation Reason Code Sequence (0040,0281), first item: {"value", "scheme", ...}
    discontinuation_reason = models.JSONField(
        null=True, blank=True, verbose_name=_("discontinuation reason")
    )
    #: The Scheduled Step Attributes Sequence (0040,0270) items as identifiers, for reconciling:
    #: [{"study_instance_uid", "accession_number", "requested_procedure_id", "sps_id"}, ...]
    scheduled_step_refs = models.JSONField(
        default=list, blank=True, verbose_name=_("scheduled steps referenced")
    )
    character_set = models.CharField(  # (0008,0005) as declared
        max_length=64, blank=True, verbose_name=_("character set")
    )
    #: The whole PPS (N-CREATE merged with every N-SET) as DICOM JSON (PS3.18 F.2).
    dataset = models.JSONField(default=dict, verbose_name=_("dataset"))
    steps = models.ManyToManyField(
        ScheduledProcedureStep, through="StepLink", related_name="performed_steps", blank=True,
        verbose_name=_("scheduled procedure steps"),
    )
    reconciliation = models.CharField(
        max_length=10, choices=Reconciliation.choices, default=Reconciliation.MATCHED,
        verbose_name=_("reconciliation"),
    )
    #: Why the PPS is (or was) an exception, written for the person reconciling it.
    reconciliation_note = models.TextField(blank=True, verbose_name=_("reconciliation note"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name_plural = _("performed procedure steps")
        ordering = ["-started_at", "-id"]
        verbose_name = _("performed procedure step")
        indexes = [
            models.Index(fields=["reconciliation", "started_at"], name="pps_reconciliation_idx"),
            models.Index(fields=["station_ae_title", "started_at"], name="pps_station_idx"),
            models.Index(fields=["status"], name="pps_status_idx"),
            # The statistics page's turnaround reads a date range of all stations.
            models.Index(fields=["started_at"], name="pps_started_idx"),
        ]

    def __str__(self) -> str:
        return f"PPS {self.pps_id} ({self.station_ae_title}, {self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_PPS_STATUSES

    @property
    def is_exception(self) -> bool:
        return self.reconciliation in EXCEPTION_STATES

    @property
    def discontinuation_code(self) -> tuple[str, str] | None:
        reason = self.discontinuation_reason or {}
        if not reason.get("value"):
            return None
        return reason["value"], reason.get("scheme", "")


class StepLink(models.Model):
    """A PPS performed (part of) a scheduled step."""

    class Source(models.TextChoices):
        MPPS = "MPPS", _("From the modality's Scheduled Step Attributes")
        STAFF = "STAFF", _("Linked by staff")

    pps = models.ForeignKey(
        PerformedProcedureStep,
        on_delete=models.CASCADE,
        related_name="links",
        verbose_name=_("performed procedure step"),
    )
    step = models.ForeignKey(
        ScheduledProcedureStep, on_delete=models.PROTECT, related_name="pps_links",
        verbose_name=_("step"),
    )
    source = models.CharField(
        max_length=5, choices=Source.choices, default=Source.MPPS, verbose_name=_("source")
    )
    linked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        verbose_name=_("linked by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("link to a scheduled step")
        verbose_name_plural = _("links to scheduled steps")
        constraints = [models.UniqueConstraint(fields=["pps", "step"], name="uniq_pps_step")]

    def __str__(self) -> str:
        return f"{self.pps_id} -> {self.step_id}"


class PerformedSeries(models.Model):
    """One item of the Performed Series Sequence (0040,0340); replaced whole on every N-SET."""

    pps = models.ForeignKey(
        PerformedProcedureStep, on_delete=models.CASCADE, related_name="series",
        verbose_name=_("performed procedure step"),
    )
    series_instance_uid = models.CharField(  # (0020,000E)
        max_length=64, verbose_name=_("Series Instance UID")
    )
    protocol_name = models.CharField(  # (0018,1030)
        max_length=64, blank=True, verbose_name=_("protocol name")
    )
    description = models.CharField(  # (0008,103E)
        max_length=64, blank=True, verbose_name=_("description")
    )
    performing_physician = models.CharField(  # (0008,1050)
        max_length=200, blank=True, verbose_name=_("performing physician")
    )
    operators = models.CharField(  # (0008,1070), "\"-separated
        max_length=400, blank=True, verbose_name=_("operators")
    )
    retrieve_ae_title = models.CharField(  # (0008,0054)
        max_length=200, blank=True, verbose_name=_("retrieve AE title")
    )
    # Referenced Image Sequence (0008,1140) and Non-Image Composite (0040,0220):
    # [[sop_class_uid, sop_instance_uid], ...]
    referenced_images = models.JSONField(
        default=list, blank=True, verbose_name=_("referenced images")
    )
    referenced_non_images = models.JSONField(
        default=list, blank=True, verbose_name=_("referenced non-image objects")
    )

    class Meta:
        ordering = ["pps", "id"]
        verbose_name = _("performed series")
        verbose_name_plural = _("performed series")
        indexes = [models.Index(fields=["series_instance_uid"], name="pps_series_uid_idx")]

    def __str__(self) -> str:
        return self.series_instance_uid

    @property
    def image_count(self) -> int:
        return len(self.referenced_images) + len(self.referenced_non_images)
