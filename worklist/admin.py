from django.contrib import admin

from worklist import models


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
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("ae_title", "kind", "modality", "station_name", "host", "port", "active")
    list_filter = ("kind", "modality", "active")
    search_fields = ("ae_title", "station_name", "location")
    inlines = [OpeningPeriodInline, SlotReservationInline, ScheduleExceptionInline]


@admin.register(models.ScheduleException)
class ScheduleExceptionAdmin(admin.ModelAdmin):
    list_display = ("station", "kind", "starts", "ends", "reason")
    list_filter = ("kind", "station")
    date_hierarchy = "starts"


class OrderCodeInline(admin.TabularInline):
    model = models.ProcedureOrderCode
    extra = 0


@admin.register(models.ProcedureType)
class ProcedureTypeAdmin(admin.ModelAdmin):
    list_display = (
        "code_value", "code_scheme", "code_meaning", "modality", "default_duration_minutes"
    )
    list_filter = ("modality", "active")
    search_fields = ("code_value", "code_meaning", "description")
    filter_horizontal = ("stations",)
    inlines = [OrderCodeInline]


@admin.register(models.Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = (
        "patient_id", "issuer", "name_alphabetic", "name_ideographic", "birth_date", "sex"
    )
    search_fields = ("patient_id", "name_alphabetic", "name_ideographic", "name_phonetic")


@admin.register(models.Visit)
class VisitAdmin(admin.ModelAdmin):
    list_display = ("admission_id", "patient", "patient_class", "assigned_location")
    search_fields = ("admission_id",)
    raw_id_fields = ("patient",)


class RequestedProcedureInline(admin.TabularInline):
    model = models.RequestedProcedure
    extra = 0
    readonly_fields = ("requested_procedure_id", "study_instance_uid")


@admin.register(models.Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "accession_number", "patient", "placer_order_number", "status", "priority", "source"
    )
    list_filter = ("status", "priority", "source")
    search_fields = ("accession_number", "placer_order_number", "patient__patient_id")
    raw_id_fields = ("patient", "visit")
    inlines = [RequestedProcedureInline]


@admin.register(models.RequestedProcedure)
class RequestedProcedureAdmin(admin.ModelAdmin):
    list_display = ("requested_procedure_id", "order", "code_value", "description")
    search_fields = ("requested_procedure_id", "study_instance_uid", "order__accession_number")
    raw_id_fields = ("order",)


@admin.register(models.ScheduledProcedureStep)
class ScheduledProcedureStepAdmin(admin.ModelAdmin):
    list_display = ("sps_id", "station", "modality", "scheduled_start", "status")
    list_filter = ("status", "modality", "station")
    search_fields = ("sps_id", "requested_procedure__order__accession_number")
    raw_id_fields = ("requested_procedure",)
    # Status moves only through the state machine (worklist.services), never by hand here.
    readonly_fields = ("status", "status_reason")


@admin.register(models.AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_type", "actor", "action", "object_type", "object_id")
    list_filter = ("actor_type", "action", "object_type")
    search_fields = ("actor", "object_id", "detail")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


admin.site.register(models.ProcedureOrderCode)
admin.site.register(models.Counter)
