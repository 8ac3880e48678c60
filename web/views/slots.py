"""Next free slot: the first fitting slots for a waiting (or booked) exam, booked in one click;
and the schedule exceptions with the exams they displace."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from web.access import ANY_ROLE, FRONT_DESK, role_required
from web.errors import domain_message
from web.views.calendar import show_on_calendar
from web.views.common import actor, int_param
from worklist import scheduling, services
from worklist.errors import DomainError
from worklist.models import Device, ScheduledProcedureStep, ScheduleException
from worklist.states import SCHEDULABLE_STEP_STATUSES

#: How many slots the list offers.
SLOTS_SHOWN = 8


def _step(pk: int) -> ScheduledProcedureStep:
    return get_object_or_404(
        ScheduledProcedureStep.objects.select_related(
            "requested_procedure__order__patient",
            "requested_procedure__order__visit",
            "requested_procedure__procedure_type",
            "station",
        ),
        pk=pk,
    )


@role_required(*FRONT_DESK)
def free_slots(request, pk: int):
    """The first free slots across the stations that perform the exam, each one click to book."""
    step = _step(pk)
    if step.status not in SCHEDULABLE_STEP_STATUSES:
        messages.error(request, _("Only a waiting or booked exam can be given a slot."))
        return redirect("web:order_detail", pk=step.requested_procedure.order_id)
    after = timezone.now()
    day = request.GET.get("from")
    if day:
        try:
            after = max(after, timezone.make_aware(
                dt.datetime.combine(dt.date.fromisoformat(day), dt.time(0))))
        except ValueError:
            pass
    slots = scheduling.next_free_slots(step=step, limit=SLOTS_SHOWN, after=after)
    return render(request, "web/free_slots.html", {"step": step, "slots": slots})


@require_POST
@role_required(*FRONT_DESK)
def book_slot(request, pk: int):
    """Book the exam into the slot picked from the list (the domain checks it again)."""
    step = _step(pk)
    station = Device.objects.filter(pk=int_param_post(request, "station")).first()
    start = parse_datetime(request.POST.get("start", ""))
    if station is None or start is None or timezone.is_naive(start):
        messages.error(request, _("This slot is no longer valid; pick another one."))
        return redirect("web:free_slots", pk=step.pk)
    try:
        step = services.step_schedule(
            step=step, start=start, station=station, actor=actor(request), refuse_past=True
        )
    except DomainError as exc:
        messages.error(request, domain_message(exc))
        return redirect("web:free_slots", pk=step.pk)
    messages.success(request, _("Booked %(what)s at %(when)s on %(station)s.") % {
        "what": step.description or step.sps_id,
        "when": timezone.localtime(step.scheduled_start).strftime("%Y-%m-%d %H:%M"),
        "station": station.ae_title,
    })
    return redirect(show_on_calendar(step, timezone.localtime(step.scheduled_start).date()))


def int_param_post(request, name: str) -> int | None:
    try:
        return int(request.POST.get(name, ""))
    except ValueError:
        return None


@role_required(*ANY_ROLE)
def schedule_exceptions(request):
    """Holidays, stations down and maintenance from today on, each with the exams booked in it
    (to rebook). Exceptions are entered in Settings (the admin) on the station."""
    today = timezone.localdate()
    days = int_param(request, "days") or 60
    start = timezone.make_aware(dt.datetime.combine(today, dt.time(0)))
    exceptions = list(
        ScheduleException.objects.select_related("station")
        .filter(ends__gt=start, starts__lt=start + dt.timedelta(days=days))
        .order_by("starts", "station__ae_title")
    )
    rows = [(exception, scheduling.affected_steps(exception)) for exception in exceptions]
    return render(request, "web/schedule_exceptions.html", {"rows": rows, "days": days})
