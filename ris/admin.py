from axes import admin as axes_admin
from axes.models import AccessAttempt
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import admin as auth_admin
from django.contrib.auth.models import Group, Permission, User
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

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
    # The stored bytes read as text in their character set, not as Python's bytes literal.
    readonly_fields = [
        f.name for f in InboundMessage._meta.fields if f.name not in ("raw", "ack")
    ] + ["text", "ack_message"]
    exclude = ("raw", "ack")

    @admin.display(description=_("message text"))
    def text(self, message: InboundMessage) -> str:
        return charsets.stored_text(message.raw, message.charset)

    @admin.display(description=_("acknowledgement"))
    def ack_message(self, message: InboundMessage) -> str:
        return charsets.ack_text(message.ack)


@admin.register(OutboundJob)
class OutboundJobAdmin(ReadOnlyAdmin):
    """The queue is the senders' to change: staff only retry (through ``outbound_queue.retry``)."""

    list_display = ("id", "kind", "destination", "ordering_key", "state", "attempts",
                    "next_attempt_at", "last_error")
    list_filter = ("state", "kind", "destination")
    actions = ["retry"]

    @admin.action(description=_("Retry the selected failed jobs"))
    def retry(self, request, queryset):
        from ris import outbound_queue

        count = outbound_queue.retry(queryset.values_list("pk", flat=True))
        self.message_user(
            request, ngettext("%(count)d job queued again", "%(count)d jobs queued again", count)
            % {"count": count}
        )


# --- the admin of Django's accounts and django-axes, in the user's language ---------------------

#: Django writes a model's default permissions into the database in English when the tables are
#: migrated ("Can add device"), so the stored name cannot follow the user's language.
_PERMISSION_ACTIONS = {
    "add": _("Can add %(model)s"),
    "change": _("Can change %(model)s"),
    "delete": _("Can delete %(model)s"),
    "view": _("Can view %(model)s"),
}


def permission_label(permission: Permission) -> str:
    """A permission as the user and group forms list it: app, model and action, translated."""
    model = permission.content_type.model_class()
    if model is None:  # a content type whose model is gone
        return str(permission)
    opts = model._meta
    action = permission.codename.split("_", 1)[0]
    if action in _PERMISSION_ACTIONS and permission.codename == f"{action}_{opts.model_name}":
        name = _PERMISSION_ACTIONS[action] % {"model": opts.verbose_name}
    else:
        name = gettext(permission.name)
    return f"{apps.get_app_config(opts.app_label).verbose_name} | {opts.verbose_name} | {name}"


class _TranslatedPermissions:
    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name in ("permissions", "user_permissions"):
            field.label_from_instance = permission_label
        return field


class GroupAdmin(_TranslatedPermissions, auth_admin.GroupAdmin):
    pass


class UserAdmin(_TranslatedPermissions, auth_admin.UserAdmin):
    pass


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    """django-axes' columns with the labels its methods lack (Django would print the names)."""

    @admin.display(description=_("expires at"))
    def expiration(self, obj: AccessAttempt):
        return super().expiration(obj)

    @admin.display(description=_("status"))
    def status(self, obj: AccessAttempt):
        return super().status(obj)


for _model, _model_admin in ((Group, GroupAdmin), (User, UserAdmin),
                             (AccessAttempt, AccessAttemptAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _model_admin)
