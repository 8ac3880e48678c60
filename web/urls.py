"""URLs of the web UI (mounted at the site root by ``ris/urls.py``)."""

from django.urls import include, path

from web.views import (
    admin_pages,
    calendar,
    desk,
    home,
    integration,
    orders,
    patients,
    prints,
    slots,
    stats,
)

app_name = "web"

urlpatterns = [
    path("", home.dashboard, name="dashboard"),
    path("patients/", patients.patient_list, name="patient_list"),
    path("patients/new/", patients.patient_create, name="patient_create"),
    path("patients/<int:pk>/", patients.patient_detail, name="patient_detail"),
    path("patients/<int:pk>/edit/", patients.patient_edit, name="patient_edit"),
    path("orders/new/", orders.order_create, name="order_create"),
    path("orders/<int:pk>/", orders.order_detail, name="order_detail"),
    path("orders/<int:pk>/edit/", orders.order_edit, name="order_edit"),
    path("orders/<int:pk>/cancel/", orders.order_cancel, name="order_cancel"),
    path("calendar/", calendar.calendar, name="calendar"),
    path("calendar/book/", calendar.book, name="book"),
    path("steps/<int:pk>/move/", calendar.move, name="move"),
    path("steps/<int:pk>/checkin/", desk.checkin, name="checkin"),
    path("steps/<int:pk>/no-show/", desk.no_show, name="no_show"),
    path("steps/<int:pk>/undo/", desk.undo, name="undo"),
    path("steps/<int:pk>/row/", desk.checkin_row, name="checkin_row"),
    path("steps/<int:pk>/slots/", slots.free_slots, name="free_slots"),
    path("steps/<int:pk>/slots/book/", slots.book_slot, name="book_slot"),
    path("schedule/exceptions/", slots.schedule_exceptions, name="schedule_exceptions"),
    path("day/", desk.day_list, name="day_list"),
    path("day/print/", prints.day_plan, name="day_plan"),
    path("statistics/", stats.statistics_page, name="statistics"),
    path("steps/<int:pk>/slip/", prints.appointment_slip, name="appointment_slip"),
    path("board/", desk.board, name="board"),
    path("board/<str:modality>/", desk.board, name="board_modality"),
    path("catalog/import/", admin_pages.catalog_import, name="catalog_import"),
    path("mpps/exceptions/", integration.mpps_exceptions, name="mpps_exceptions"),
    path("mpps/<int:pk>/link/", integration.mpps_link, name="mpps_link"),
    path("mpps/<int:pk>/dismiss/", integration.mpps_dismiss, name="mpps_dismiss"),
    path("hl7/messages/", integration.hl7_messages, name="hl7_messages"),
    path("hl7/messages/<int:pk>/", integration.hl7_message, name="hl7_message"),
    path("hl7/messages/<int:pk>/reprocess/", integration.hl7_reprocess, name="hl7_reprocess"),
    path("outbound/", integration.outbound_queue, name="outbound_queue"),
    path("outbound/retry/", integration.outbound_retry, name="outbound_retry"),
    path("i18n/", include("django.conf.urls.i18n")),
]
