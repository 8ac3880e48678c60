"""The statistics page: charts and tables of the department's activity, each table as CSV."""

from __future__ import annotations

import csv
import datetime as dt

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe

from web import statistics
from web.access import ANY_ROLE, role_required
from web.views.common import actor, day_param
from worklist import services

#: The CSV tables of the page (``?csv=<name>``).
CSV_TABLES = ("modality", "stations", "lead", "turnaround")


@role_required(*ANY_ROLE)
def statistics_page(request):
    today = timezone.localdate()
    last = day_param(request, "to") if request.GET.get("to") else today
    first = day_param(request, "from") if request.GET.get("from") else last - dt.timedelta(days=29)
    if first > last:
        first, last = last, first
    first = max(first, last - dt.timedelta(days=366))  # one year at most per page
    group = request.GET.get("group") if request.GET.get("group") in statistics.TRUNC else "day"
    stats = statistics.statistics(first, last, group=group)
    table = request.GET.get("csv")
    if table in CSV_TABLES:
        services.exported(actor=actor(request), kind="statistics",
                          what=f"statistics {table} {first}..{last} as CSV", object_id=table)
        return _csv(stats, table)
    return render(
        request,
        "web/statistics.html",
        {
            "stats": stats,
            "group": group,
            "chart": mark_safe(statistics.bar_chart_svg(stats)),  # noqa: S308 - escaped inside
            "utilisation": mark_safe(statistics.utilisation_svg(stats)),  # noqa: S308
            "query": request.GET.urlencode(),
        },
    )


def _csv(stats: statistics.Statistics, table: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="ris-{table}-{stats.first:%Y%m%d}-{stats.last:%Y%m%d}.csv"'
    )
    response.write("\ufeff")  # Excel on Chinese Windows reads UTF-8 only with a BOM
    writer = csv.writer(response)
    if table == "modality":
        writer.writerow(["period", *stats.modalities])
        for period in stats.periods:
            writer.writerow([period.isoformat()] + [
                stats.per_modality.get((period, m), 0) for m in stats.modalities
            ])
    elif table == "stations":
        writer.writerow(["station", "modality", "exams", "completed", "no_shows", "cancelled",
                         "no_show_rate", "cancel_rate", "booked_minutes", "open_minutes",
                         "utilisation"])
        for row in stats.stations:
            writer.writerow([
                row.ae_title, row.modality, row.exams, row.completed, row.no_shows, row.cancelled,
                f"{row.no_show_rate:.3f}", f"{row.cancel_rate:.3f}", row.booked_minutes,
                row.open_minutes, "" if row.utilisation is None else f"{row.utilisation:.3f}",
            ])
    elif table == "lead":
        writer.writerow(["modality", "mean_hours_ordered_to_scheduled", "exams"])
        for modality, (hours, n) in stats.lead_hours.items():
            writer.writerow([modality, f"{hours:.1f}", n])
    else:
        writer.writerow(["station", "mean_minutes_started_to_completed", "performed_steps"])
        for ae_title, (minutes, n) in stats.turnaround_minutes.items():
            writer.writerow([ae_title, f"{minutes:.1f}", n])
    return response
