"""What the front desk prints: the day plan of a station and the patient's appointment slip.

Plain HTML with print CSS (``@media print`` in ris.css hides the navigation): every browser
prints it or saves it as PDF, in the user's language, without a PDF library on the server.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render

from web import selectors
from web.access import ANY_ROLE, role_required
from web.views.common import actor, day_param, int_param
from worklist import services
from worklist.models import Device, ScheduledProcedureStep
from worklist.states import WORKLIST_STATUSES


@role_required(*ANY_ROLE)
def day_plan(request):
    """One station's exams of a day, for the wall of the exam room: time, patient, procedure and
    what must be prepared (alerts, allergies, contrast, premedication). Without a station: all."""
    day = day_param(request)
    start, end = selectors.day_bounds(day)
    stations = selectors.stations()
    station_id = int_param(request, "station")
    station = next((s for s in stations if s.pk == station_id), None)
    steps = selectors.steps_between(
        start, end,
        station_ids=[station.pk] if station else None,
        statuses=tuple(WORKLIST_STATUSES) + ("STARTED", "COMPLETED"),
    )
    by_station: dict[Device | None, list[ScheduledProcedureStep]] = {}
    for step in steps:
        by_station.setdefault(step.station, []).append(step)
    services.exported(actor=actor(request), kind="print",
                      what=f"day plan {day} {station.ae_title if station else 'all stations'}",
                      object_id=f"day plan {day}")
    return render(
        request,
        "web/print_day_plan.html",
        {"day": day, "station": station, "stations": stations, "plans": by_station.items()},
    )


@role_required(*ANY_ROLE)
def appointment_slip(request, pk: int):
    """The slip handed to the patient: when and where to come, and how to prepare."""
    step = get_object_or_404(
        ScheduledProcedureStep.objects.select_related(
            "requested_procedure__order__patient", "station"
        ),
        pk=pk,
    )
    services.exported(actor=actor(request), kind="print", what=f"appointment slip of step {pk}",
                      object_id=f"slip {pk}")
    return render(request, "web/print_slip.html", {"step": step})
