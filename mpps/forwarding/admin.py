"""PACS destinations are configured here; spool, deliveries and commitments are read-only views
for operators (a failed delivery is retried through the outbound queue: admin or
``ris outbound --retry``)."""

from django.contrib import admin

from mpps.forwarding import models
from worklist.admin import AuditedConfigurationAdmin, ReadOnlyAdmin


@admin.register(models.PacsDestination)
class PacsDestinationAdmin(AuditedConfigurationAdmin):
    list_display = (
        "name",
        "ae_title",
        "host",
        "port",
        "send_mpps",
        "send_images",
        "storage_commitment",
        "query_availability",
        "iocm",
        "use_tls",
        "active",
    )
    list_filter = ("active", "send_mpps", "send_images", "storage_commitment", "iocm", "use_tls")
    search_fields = ("name", "ae_title", "host")


class DeliveryInline(admin.TabularInline):
    model = models.InstanceDelivery
    extra = 0
    can_delete = False
    fields = ("destination", "state", "store_count", "last_status", "sent_at", "committed_at")
    readonly_fields = fields


@admin.register(models.SpooledInstance)
class SpooledInstanceAdmin(ReadOnlyAdmin):
    list_display = (
        "sop_instance_uid",
        "study_instance_uid",
        "calling_ae_title",
        "origin",
        "matched",
        "step",
        "received_at",
        "purged_at",
    )
    list_filter = ("origin", "matched", "calling_ae_title")
    search_fields = ("sop_instance_uid", "study_instance_uid", "series_instance_uid")
    date_hierarchy = "received_at"
    inlines = [DeliveryInline]


@admin.register(models.CommitmentRequest)
class CommitmentRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "transaction_uid",
        "destination",
        "state",
        "instance_count",
        "failed_count",
        "requested_at",
        "reported_at",
        "report_via",
    )
    list_filter = ("state", "destination")


@admin.register(models.StepImages)
class StepImagesAdmin(ReadOnlyAdmin):
    list_display = (
        "step",
        "received_series",
        "received_instances",
        "pacs_series",
        "pacs_instances",
        "pacs_confirmed_at",
        "pacs_checked_at",
    )
    search_fields = ("step__sps_id",)
