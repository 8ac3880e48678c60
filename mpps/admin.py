"""Admin views of performed procedure steps: read-mostly, since a PPS is the modality's record.

Reconciling an exception goes through ``mpps.services`` (web UI, API), never through editing
rows here: the steps' status, the audit trail and the HIS messages must follow a link.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from mpps import models
from worklist.admin import ReadOnlyAdmin


class PerformedSeriesInline(admin.TabularInline):
    model = models.PerformedSeries
    extra = 0
    can_delete = False
    fields = ("series_instance_uid", "protocol_name", "description", "operators", "image_count")
    readonly_fields = fields

    @admin.display(description=_("images"))
    def image_count(self, series: models.PerformedSeries) -> int:
        return series.image_count


class StepLinkInline(admin.TabularInline):
    model = models.StepLink
    extra = 0
    can_delete = False
    fields = ("step", "source", "linked_by", "created_at")
    readonly_fields = fields


@admin.register(models.PerformedProcedureStep)
class PerformedProcedureStepAdmin(ReadOnlyAdmin):
    list_display = (
        "pps_id",
        "station_ae_title",
        "modality",
        "status",
        "started_at",
        "ended_at",
        "patient_id",
        "reconciliation",
    )
    list_filter = ("status", "reconciliation", "modality", "station_ae_title")
    search_fields = (
        "sop_instance_uid",
        "pps_id",
        "patient_id",
        "patient_name",
        "station_ae_title",
        "series__series_instance_uid",
    )
    date_hierarchy = "started_at"
    inlines = [StepLinkInline, PerformedSeriesInline]
    readonly_fields = [f.name for f in models.PerformedProcedureStep._meta.concrete_fields]
