"""The Django admin: configuration is edited here, audited; the domain's records are read-only.

Orders, steps, patients and their trail change only through ``worklist.services`` (web UI, API,
HL7), which check the state machine and overlaps, audit, and tell the HIS and the PACS; an edit
here would do none of that (docs/architecture.md, rule 2). Configuration (devices, the
procedure catalogue) is written through ``worklist.configuration``, so every change is audited.
"""

from django.contrib import admin

from worklist import configuration, models
from worklist.audit import Actor


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record that admins may look at but not add, change or delete."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AuditedConfigurationAdmin(admin.ModelAdmin):
    """Configuration edited in the admin: each save and delete writes its audit row."""

    def save_model(self, request, obj, form, change) -> None:
        configuration.configuration_save(
            actor=Actor.for_user(request.user),
            model=type(obj),
            pk=obj.pk if change else None,
            write=lambda: (obj.save(), obj)[1],
        )

    def delete_model(self, request, obj) -> None:
        configuration.configuration_delete(actor=Actor.for_user(request.user), obj=obj)

    def delete_queryset(self, request, queryset) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change) -> None:
        # Inline rows (a procedure's order codes) are configuration too: audited one by one.
        actor = Actor.for_user(request.user)
        for obj in formset.save(commit=False):
            configuration.configuration_save(
                actor=actor, model=type(obj), pk=obj.pk, write=lambda o=obj: (o.save(), o)[1]
            )
        for obj in formset.deleted_objects:
            configuration.configuration_delete(actor=actor, obj=obj)
        formset.save_m2m()


class OpeningPeriodInline(admin.TabularInline):
    """The station's weekly template: one row per open period (two on a day leave a break)."""

    model = models.OpeningPeriod
    extra = 0


class SlotReservationInline(admin.TabularInline):
    model = models.SlotReservation
    extra = 0


class ScheduleExceptionInline(admin.TabularInline):
    model = models.ScheduleException
    extra = 0


@admin.register(models.Device)
class DeviceAdmin(AuditedConfigurationAdmin):
    list_display = (
        "ae_title", "kind", "modality", "station_name", "host", "port", "step_progress", "active"
    )
    list_filter = ("kind", "modality", "step_progress", "active")
    search_fields = ("ae_title", "station_name", "location")
    inlines = [OpeningPeriodInline, SlotReservationInline, ScheduleExceptionInline]


@admin.register(models.ScheduleException)
class ScheduleExceptionAdmin(admin.ModelAdmin):
    list_display = ("station", "kind", "starts", "ends", "reason")
    list_filter = ("kind", "station")
    date_hierarchy = "starts"


class OrderCodeInline(admin.TabularInline):
    """Order codes of a procedure, saved through ``AuditedConfigurationAdmin.save_formset``."""

    model = models.ProcedureOrderCode
    extra = 0


@admin.register(models.ProcedureType)
class ProcedureTypeAdmin(AuditedConfigurationAdmin):
    list_display = (
        "code_value", "code_scheme", "code_meaning", "modality", "default_duration_minutes"
    )
    list_filter = ("modality", "active")
    search_fields = ("code_value", "code_meaning", "description")
    filter_horizontal = ("stations",)
    inlines = [OrderCodeInline]


@admin.register(models.Patient)
class PatientAdmin(ReadOnlyAdmin):
    list_display = (
        "patient_id", "issuer", "name_alphabetic", "name_ideographic", "birth_date", "sex"
    )
    search_fields = ("patient_id", "name_alphabetic", "name_ideographic", "name_phonetic")


@admin.register(models.Visit)
class VisitAdmin(ReadOnlyAdmin):
    list_display = ("admission_id", "patient", "patient_class", "assigned_location")
    search_fields = ("admission_id",)
    raw_id_fields = ("patient",)


class RequestedProcedureInline(ReadOnlyInline):
    model = models.RequestedProcedure


@admin.register(models.Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "accession_number", "patient", "placer_order_number", "status", "priority", "source"
    )
    list_filter = ("status", "priority", "source")
    search_fields = ("accession_number", "placer_order_number", "patient__patient_id")
    raw_id_fields = ("patient", "visit")
    inlines = [RequestedProcedureInline]


@admin.register(models.RequestedProcedure)
class RequestedProcedureAdmin(ReadOnlyAdmin):
    list_display = ("requested_procedure_id", "order", "code_value", "description")
    search_fields = ("requested_procedure_id", "study_instance_uid", "order__accession_number")
    raw_id_fields = ("order",)


@admin.register(models.ScheduledProcedureStep)
class ScheduledProcedureStepAdmin(ReadOnlyAdmin):
    list_display = ("sps_id", "station", "modality", "scheduled_start", "status")
    list_filter = ("status", "modality", "station")
    search_fields = ("sps_id", "requested_procedure__order__accession_number")
    raw_id_fields = ("requested_procedure",)


@admin.register(models.AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor_type", "actor", "action", "object_type", "object_id")
    list_filter = ("actor_type", "action", "object_type")
    search_fields = ("actor", "object_id", "detail")


@admin.register(models.ProcedureOrderCode)
class ProcedureOrderCodeAdmin(AuditedConfigurationAdmin):
    list_display = ("code", "coding_system", "procedure_type")


@admin.register(models.Counter)
class CounterAdmin(ReadOnlyAdmin):
    """Identifier counters: a counter set back by hand would hand out an accession twice."""


@admin.register(models.StationRule)
class StationRuleAdmin(AuditedConfigurationAdmin):
    """Ordered: the first active rule whose filled-in criteria all match chooses the station."""

    list_display = (
        "position", "active", "procedure_code", "modality", "patient_class", "department",
        "location", "priority", "station",
    )
    list_editable = ("active", "station")
    list_display_links = ("position",)
    list_filter = ("active", "modality")
    ordering = ("position", "id")


@admin.register(models.ModalityDefaultStation)
class ModalityDefaultStationAdmin(AuditedConfigurationAdmin):
    list_display = ("modality", "station")
