from django.contrib import admin

from ris.hl7 import charsets
from ris.models import Heartbeat, HL7Destination, HL7Sender, InboundMessage, OutboundJob
from worklist.admin import AuditedConfigurationAdmin, ReadOnlyAdmin

admin.site.register(Heartbeat, ReadOnlyAdmin)


@admin.register(HL7Sender)
class HL7SenderAdmin(AuditedConfigurationAdmin):
    list_display = (
        "application", "facility", "default_charset", "derive_control_id", "application_response",
        "description",
    )


@admin.register(HL7Destination)
class HL7DestinationAdmin(AuditedConfigurationAdmin):
    list_display = (
        "name", "host", "port", "version", "charset", "send_order_status", "swf_b_omi",
        "send_patient_updates", "active"
    )


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    """The HL7 message store: read-only (a message is evidence), searchable by control ID."""

    list_display = ("id", "received_at", "sender", "control_id", "message_type", "status",
                    "ack_code", "error")
    list_filter = ("status", "message_type", "sender")
    search_fields = ("control_id", "sender", "error")
    readonly_fields = [f.name for f in InboundMessage._meta.fields] + ["text"]
    exclude = ("raw", "ack")

    @admin.display(description="text")
    def text(self, message: InboundMessage) -> str:
        return charsets.stored_text(message.raw, message.charset)


@admin.register(OutboundJob)
class OutboundJobAdmin(ReadOnlyAdmin):
    """The queue is the senders' to change: staff only retry (through ``outbound_queue.retry``)."""

    list_display = ("id", "kind", "destination", "ordering_key", "state", "attempts",
                    "next_attempt_at", "last_error")
    list_filter = ("state", "kind", "destination")
    actions = ["retry"]

    @admin.action(description="Retry the selected failed jobs")
    def retry(self, request, queryset):
        from ris import outbound_queue

        count = outbound_queue.retry(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} job(s) queued again")
