"""The scheduling calendar (day: stations side by side; week: one station's seven days), and
booking and moving steps.

Bookings go through ``services.step_schedule`` like HL7 and the API, so the domain checks
opening hours and overlaps and refuses a clash with its ScheduleConflict message unless the
station allows overbooking; the view only puts that message on the form.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from ris.roles import has_role
from web import live, selectors
from web.access import ANY_ROLE, FRONT_DESK, role_required
from web.calendar import (
    SLOT_CHOICES,
    build_grid,
    label_blocks,
    render_slots,
    week_of,
)
from web.errors import warning_message
from web.forms import BookForm, MoveForm, add_domain_error
from web.views.common import actor, day_param, int_param, modality_param
from worklist import scheduling, services
from worklist.errors import DomainError
from worklist.models import ScheduledProcedureStep
from worklist.states import MOVABLE_STEP_STATUSES

_PK = 987654321


def calendar_url(day: dt.date, **params) -> str:
    query = {"date": day.isoformat(), **{k: v for k, v in params.items() if v}}
    return f"{reverse('web:calendar')}?{urlencode(query)}"


@role_required(*ANY_ROLE)
def calendar(request):
    day = day_param(request)
    view = "week" if request.GET.get("view") == "week" else "day"
    modality = modality_param(request)
    slot = int_param(request, "slot")
    slot = slot if slot in SLOT_CHOICES else 15
    all_stations = selectors.stations(modality)
    station_id = int_param(request, "station")
    if view == "week":
        station = next((s for s in all_stations if s.pk == station_id), None) or (
            all_stations[0] if all_stations else None
        )
        days = week_of(day)
        columns = [(station, d) for d in days] if station else []
        start, end = selectors.day_bounds(days[0])[0], selectors.day_bounds(days[-1])[1]
        shown = [station] if station else []
    else:
        station = None
        columns = [(s, day) for s in all_stations]
        start, end = selectors.day_bounds(day)
        shown = all_stations
    version = live.steps_version(
        selectors.steps_between(start, end, station_ids=[s.pk for s in shown])
    )
    unchanged = live.not_modified(request, version)
    if unchanged is not None:
        return unchanged
    steps = selectors.calendar_steps(start, end, station_ids=[s.pk for s in shown])
    grid = build_grid(columns=columns, steps=steps, slot_minutes=slot)
    can_book = has_role(request.user, *FRONT_DESK)
    render_slots(grid, book_url=reverse("web:book") if can_book else None,
                 book_label=_("Book"), closed_label=_("Closed"))
    # reverse() once per page, not once per block.
    move_url = reverse("web:move", kwargs={"pk": _PK}).replace(str(_PK), "{}")
    detail_url = reverse("web:order_detail", kwargs={"pk": _PK}).replace(str(_PK), "{}")
    label_blocks(
        grid,
        move_url=move_url.format,
        detail_url=detail_url.format,
        can_move=can_book,
        movable=MOVABLE_STEP_STATUSES,
        highlight=int_param(request, "highlight"),
    )
    delta = dt.timedelta(days=7 if view == "week" else 1)
    common = {"view": view, "modality": modality, "slot": slot if slot != 15 else "",
              "station": station.pk if station else ""}
    return render(
        request,
        "web/calendar.html",
        {
            "grid": grid,
            "day": day,
            "view": view,
            "modality": modality,
            "modalities": selectors.modalities_in_use(),
            "stations": all_stations,
            "station": station,
            "slot": slot,
            "slot_choices": SLOT_CHOICES,
            "unscheduled": selectors.unscheduled_steps(modality=modality),
            "previous_url": calendar_url(day - delta, **common),
            "next_url": calendar_url(day + delta, **common),
            "today_url": calendar_url(timezone.localdate(), **common),
            "day_url": calendar_url(day, **{**common, "view": "day", "station": ""}),
            "week_url": calendar_url(day, **{**common, "view": "week"}),
            "movable": MOVABLE_STEP_STATUSES,
            **live.context(request, region="calendar-live", version=version),
        },
    )


def _initial_slot(request) -> dict:
    """The slot clicked on the calendar, and the waiting exam that fits it best (unless the
    link named one): the right modality, a procedure the station does, urgent first, and short
    enough for the free time until the next booking or closing."""
    initial = {}
    station_id = int_param(request, "station")
    if station_id is not None:
        initial["station"] = station_id
    for name in ("date", "time", "step"):
        if request.GET.get(name):
            initial[name] = request.GET[name]
    if "step" not in initial and station_id is not None:
        start = _slot_start(request)
        fitting = selectors.fitting_waiting_step(station_id=station_id, start=start)
        if fitting is not None:
            initial["step"] = fitting.pk
    return initial


def _slot_start(request) -> dt.datetime | None:
    day, time = request.GET.get("date", ""), request.GET.get("time", "")
    try:
        return timezone.make_aware(
            dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(time))
        )
    except ValueError:
        return None


def booking_warnings(step: ScheduledProcedureStep, data: dict) -> list[str]:
    """The warnings of a manual booking or move, unless the clerk confirmed them: a start
    outside the opening hours, time reserved for other cases, the patient busy elsewhere."""
    if data.get("confirm_warnings"):
        return []
    found = scheduling.step_booking_warnings(
        step, station=data["station"], start=data["start"], minutes=data.get("duration_minutes")
    )
    return [warning_message(warning) for warning in found]


@role_required(*FRONT_DESK)
def book(request):
    """Book a waiting (unscheduled) step into a slot chosen on the calendar; what the
    next-free-slot search would not offer (closed, reserved, the patient elsewhere) is booked
    only once the clerk confirms the warning."""
    form = BookForm(request.POST or None, initial=_initial_slot(request))
    warnings: list[str] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        warnings = booking_warnings(data["step"], data)
    if request.method == "POST" and form.is_valid() and not warnings:
        try:
            step = services.step_schedule(
                step=data["step"],
                start=data["start"],
                station=data["station"],
                duration_minutes=data.get("duration_minutes"),
                actor=actor(request),
                refuse_past=True,
                outside_hours_ok=data["confirm_warnings"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Booked %(what)s at %(when)s on %(station)s.") % {
                "what": step.description or step.sps_id,
                "when": timezone.localtime(step.scheduled_start).strftime("%Y-%m-%d %H:%M"),
                "station": step.station.ae_title,
            })
            return redirect(show_on_calendar(step, data["date"]))
    return render(request, "web/step_book.html", {"form": form, "warnings": warnings})


@role_required(*FRONT_DESK)
def move(request, pk: int):
    """Move a scheduled step to another time and/or station (a form, or a drop on the grid)."""
    step = get_object_or_404(
        ScheduledProcedureStep.objects.select_related("requested_procedure__order__patient",
                                                      "station"),
        pk=pk,
    )
    if step.status not in MOVABLE_STEP_STATUSES:
        messages.error(request, _("Only a scheduled, arrived or ready exam can be moved."))
        return redirect("web:order_detail", pk=step.requested_procedure.order_id)
    local = timezone.localtime(step.scheduled_start)
    form = MoveForm(
        request.POST or None,
        initial={
            "station": step.station_id,
            "date": local.date(),
            "time": local.time().replace(second=0, microsecond=0),
            "duration_minutes": step.expected_duration_minutes,
        },
    )
    warnings: list[str] = []
    if request.method == "POST" and form.is_valid():
        warnings = booking_warnings(step, form.cleaned_data)
    if request.method == "POST" and form.is_valid() and not warnings:
        data = form.cleaned_data
        try:
            step = services.step_schedule(
                step=step,
                start=data["start"],
                station=data["station"],
                duration_minutes=data.get("duration_minutes"),
                actor=actor(request),
                refuse_past=True,
                outside_hours_ok=data["confirm_warnings"],
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, _("Moved to %(when)s on %(station)s.") % {
                "when": timezone.localtime(step.scheduled_start).strftime("%Y-%m-%d %H:%M"),
                "station": step.station.ae_title,
            })
            return redirect(show_on_calendar(step, data["date"]))
    return render(
        request, "web/step_move.html", {"form": form, "step": step, "warnings": warnings}
    )


def show_on_calendar(step: ScheduledProcedureStep, day: dt.date) -> str:
    """The calendar of ``day`` scrolled to the step just booked or moved, highlighted."""
    return f"{calendar_url(day, highlight=step.pk)}#block-{step.pk}"

