"""Today's dashboard: per station and modality, counts by status and the next patients."""

from __future__ import annotations

import datetime as dt

from django.shortcuts import render
from django.utils import timezone

from mpps import exceptions as exception_selectors
from ris import outbound_queue as queue
from ris.roles import ADMIN, TECHNOLOGIST, has_role
from web import live, selectors
from web.access import ANY_ROLE, role_required
from web.views.common import day_param
from web.views.exceptions import KIND_LABELS
from worklist.models import ScheduledProcedureStep, StepStatus

DASHBOARD_STATUSES = [
    StepStatus.SCHEDULED,
    StepStatus.ARRIVED,
    StepStatus.READY,
    StepStatus.STARTED,
    StepStatus.COMPLETED,
    StepStatus.DISCONTINUED,
    StepStatus.CANCELED,
]


@role_required(*ANY_ROLE)
def dashboard(request):
    """Today's counts and next patients; a live region (web/live.py) like the check-in list."""
    day = day_param(request)
    start, end = selectors.day_bounds(day)
    version = live.steps_version(
        ScheduledProcedureStep.objects.filter(scheduled_start__gte=start, scheduled_start__lt=end)
    )
    unchanged = live.not_modified(request, version)
    if unchanged is not None:
        return unchanged
    board = selectors.dashboard(day)
    # The outbound queue per destination (depth, oldest waiting, failed): for admins, who can
    # retry or supersede; other roles see nothing they could act on.
    outbound = queue.destination_status() if has_role(request.user, *ADMIN) else None
    # Open exceptions per kind, for those who resolve them (technologists, admins).
    exceptions = None
    if has_role(request.user, *TECHNOLOGIST):
        counts = exception_selectors.exception_counts()
        exceptions = [(kind, KIND_LABELS[kind], counts[kind]) for kind in exception_selectors.KINDS]
    template = "web/_dashboard_live.html" if request.htmx else "web/dashboard.html"
    return render(
        request,
        template,
        {
            **live.context(request, region="dashboard", version=version),
            "board": board,
            "day": day,
            "today": timezone.localdate(),
            "statuses": DASHBOARD_STATUSES,
            "previous_day": day - dt.timedelta(days=1),
            "next_day": day + dt.timedelta(days=1),
            "outbound": outbound,
            "exceptions": exceptions,
        },
    )
