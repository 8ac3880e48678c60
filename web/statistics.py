"""Reads behind the statistics page: exams per modality and station over time, no-show and
cancellation rates, waiting and turnaround times, station utilisation against the template.

Each table is one aggregate query (GROUP BY in the database, on the indexed ``scheduled_start``),
whatever the number of steps; utilisation adds the stations' templates (three queries).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Avg, Count, F, FloatField, Func, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from mpps.models import PerformedProcedureStep
from web.selectors import day_bounds, stations
from worklist import scheduling
from worklist.models import ScheduledProcedureStep, StepStatus

#: The chart's groupings: a period's first day from a day (weeks start on Monday, as ISO 8601
#: and Django's TruncWeek).
TRUNC = {
    "day": lambda day: day,
    "week": lambda day: day - dt.timedelta(days=day.weekday()),
    "month": lambda day: day.replace(day=1),
}
_EPOCH = dt.date(1970, 1, 1)


class _Seconds(Func):
    """Seconds since 1970 of a datetime column, computed by the database itself.

    Django's own datetime arithmetic and truncation on SQLite call a Python function per row
    (``django_timestamp_diff``, ``django_datetime_trunc``): at 100k steps that was most of the
    page's time. ``julianday`` and ``EXTRACT(EPOCH ...)`` are native. ris runs on SQLite and
    PostgreSQL only.
    """

    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"((julianday({sql}) - 2440587.5) * 86400.0)", params

    def as_postgresql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"EXTRACT(EPOCH FROM {sql})", params


class _LocalDayNumber(Func):
    """Days since 1970-01-01 of a datetime column in a zone ``offset`` seconds east of UTC, on
    SQLite (native, unlike TruncDate there); used only while the offset is the same on every
    day of the range (``_fixed_offset``)."""

    output_field = FloatField()

    def __init__(self, expression, offset: int) -> None:
        super().__init__(expression)
        self.offset = offset

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return (
            f"CAST(((julianday({sql}) - 2440587.5) * 86400.0 + {int(self.offset)}) / 86400 "
            "AS INTEGER)",
            params,
        )


def _fixed_offset(first: dt.date, last: dt.date) -> int | None:
    """The department zone's UTC offset in seconds when it is the same on every day from
    ``first`` to ``last`` (no daylight-saving change in between), else None."""
    zone = timezone.get_current_timezone()
    offsets = set()
    day = first - dt.timedelta(days=1)
    while day <= last + dt.timedelta(days=1):
        for hour in (0, 12):
            offsets.add(zone.utcoffset(dt.datetime.combine(day, dt.time(hour))))
        day += dt.timedelta(days=1)
    if len(offsets) != 1:
        return None
    return int(offsets.pop().total_seconds())


def _local_days(steps, first: dt.date, last: dt.date):
    """``steps`` annotated with ``day``, their start's department date: native on SQLite while
    the zone keeps one offset, else TruncDate (native on PostgreSQL, AT TIME ZONE)."""
    offset = _fixed_offset(first, last) if connection.vendor == "sqlite" else None
    if offset is not None:
        return steps.annotate(day=_LocalDayNumber(F("scheduled_start"), offset))
    return steps.annotate(day=TruncDate("scheduled_start"))


def _as_date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return _EPOCH + dt.timedelta(days=int(value))
_NO_SHOW = Q(status=StepStatus.CANCELED) & (
    Q(status_reason="no-show") | Q(status_reason__startswith="no-show:")
)


@dataclass
class StationRow:
    ae_title: str
    modality: str
    exams: int = 0
    completed: int = 0
    no_shows: int = 0
    cancelled: int = 0
    booked_minutes: int = 0
    open_minutes: int = 0

    @property
    def no_show_rate(self) -> float:
        return self.no_shows / self.exams if self.exams else 0.0

    @property
    def cancel_rate(self) -> float:
        return self.cancelled / self.exams if self.exams else 0.0

    @property
    def utilisation(self) -> float | None:
        return self.booked_minutes / self.open_minutes if self.open_minutes else None


@dataclass
class Statistics:
    first: dt.date
    last: dt.date
    group: str
    periods: list[dt.date] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    #: (period, modality) -> exams
    per_modality: dict[tuple[dt.date, str], int] = field(default_factory=dict)
    stations: list[StationRow] = field(default_factory=list)
    #: modality -> (mean hours ordered -> scheduled start, exams)
    lead_hours: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: station AE title -> (mean minutes started -> completed, performed steps)
    turnaround_minutes: dict[str, tuple[float, int]] = field(default_factory=dict)


def statistics(first: dt.date, last: dt.date, *, group: str = "day") -> Statistics:
    """The figures of the days ``first`` to ``last`` (department time), grouped by day, week or
    month for the chart."""
    start, end = day_bounds(first)[0], day_bounds(last)[1]
    result = Statistics(first, last, group)
    steps = ScheduledProcedureStep.objects.filter(
        scheduled_start__gte=start, scheduled_start__lt=end
    )
    trunc = TRUNC.get(group, TRUNC["day"])
    # One row per (department day, modality), rolled up into weeks or months here: at most
    # 366 x modalities rows, whatever the number of steps.
    for day, modality, n in (
        _local_days(steps.exclude(status=StepStatus.CANCELED), first, last)
        .values_list("day", "modality")
        .annotate(n=Count("id"))
        .order_by("day", "modality")
    ):
        period = trunc(_as_date(day))
        key = (period, modality)
        result.per_modality[key] = result.per_modality.get(key, 0) + n
        if period not in result.periods:
            result.periods.append(period)
        if modality not in result.modalities:
            result.modalities.append(modality)
    result.periods.sort()
    result.modalities.sort()

    rows: dict[int | None, StationRow] = {}
    known = {s.pk: s for s in stations()}
    for station_id, ae_title, modality, total, completed, no_shows, cancelled, minutes in (
        steps.values_list("station_id", "station__ae_title", "station__modality")
        .annotate(
            total=Count("id"),
            completed=Count("id", filter=Q(status=StepStatus.COMPLETED)),
            no_shows=Count("id", filter=_NO_SHOW),
            cancelled=Count("id", filter=Q(status=StepStatus.CANCELED) & ~_NO_SHOW),
            minutes=Sum("expected_duration_minutes", filter=Q(status__in=scheduling.OCCUPYING)
                        | Q(status=StepStatus.COMPLETED)),
        )
        .order_by("station__ae_title")
    ):
        rows[station_id] = StationRow(
            ae_title or "—", modality or "", total, completed, no_shows, cancelled, minutes or 0
        )
    weeks = scheduling.station_weeks(list(known.values()), start, end)
    for week in weeks:
        open_minutes = week.open_minutes(first, last)
        row = rows.setdefault(week.station.pk, StationRow(week.station.ae_title,
                                                          week.station.modality))
        # A station without a template or hours is open around the clock: no meaningful rate.
        if open_minutes is not None:
            row.open_minutes = open_minutes
    result.stations = sorted(rows.values(), key=lambda r: r.ae_title)

    lead = _Seconds(F("scheduled_start")) - _Seconds(F("requested_procedure__order__created_at"))
    for modality, mean, n in (
        steps.exclude(status=StepStatus.CANCELED)
        .values_list("modality")
        .annotate(mean=Avg(lead, output_field=FloatField()), n=Count("id"))
        .order_by("modality")
    ):
        result.lead_hours[modality] = ((mean / 3600) if mean else 0.0, n)

    took = _Seconds(F("ended_at")) - _Seconds(F("started_at"))
    for ae_title, mean, n in (
        PerformedProcedureStep.objects.filter(
            started_at__gte=start, started_at__lt=end, ended_at__isnull=False
        )
        .values_list("station_ae_title")
        .annotate(mean=Avg(took, output_field=FloatField()), n=Count("id"))
        .order_by("station_ae_title")
    ):
        result.turnaround_minutes[ae_title] = ((mean / 60) if mean else 0.0, n)
    return result


def bar_chart_svg(stats: Statistics, *, width: int = 720, height: int = 220) -> str:
    """Exams per period, stacked by modality, as inline SVG (no script, no CDN, prints)."""
    from django.utils.html import escape

    palette = ["#1f5f99", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#84cc16",
               "#ec4899", "#64748b", "#a16207", "#0f766e"]
    colours = {m: palette[i % len(palette)] for i, m in enumerate(stats.modalities)}
    totals = [sum(stats.per_modality.get((p, m), 0) for m in stats.modalities)
              for p in stats.periods]
    top = max(totals or [0]) or 1
    left, bottom, plot_h = 36, 28, height - 40
    bar_w = max(2.0, (width - left - 8) / max(1, len(stats.periods)) * 0.8)
    step_w = (width - left - 8) / max(1, len(stats.periods))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} '
             f'{height}" role="img">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" '
             'stroke="#999"/>',
             f'<text x="{left - 4}" y="14" text-anchor="end" font-size="10">{top}</text>']
    for i, period in enumerate(stats.periods):
        x = left + i * step_w
        y = height - bottom
        for modality in stats.modalities:
            n = stats.per_modality.get((period, modality), 0)
            if not n:
                continue
            h = n / top * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colours[modality]}"><title>{escape(period.isoformat())} '
                f'{escape(modality)}: {n}</title></rect>'
            )
        if len(stats.periods) <= 16 or i % max(1, len(stats.periods) // 8) == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 12}" font-size="9" '
                         f'text-anchor="middle">{period:%m-%d}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="legend"><i style="background:{colours[m]}"></i>{escape(m)}</span>'
        for m in stats.modalities
    )
    return "".join(parts) + f'<div class="legends">{legend}</div>'


def utilisation_svg(stats: Statistics, *, width: int = 720) -> str:
    """Booked share of each station's open time, as horizontal bars."""
    from django.utils.html import escape

    rows = [r for r in stats.stations if r.utilisation is not None]
    height = 22 * len(rows) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} '
             f'{height}" role="img">']
    for i, row in enumerate(rows):
        y = 5 + i * 22
        share = min(row.utilisation or 0, 1.5)
        parts.append(f'<text x="0" y="{y + 14}" font-size="11">{escape(row.ae_title)}</text>')
        parts.append(f'<rect x="80" y="{y}" width="{(width - 140) * min(share, 1):.1f}" '
                     f'height="16" fill="#1f5f99"/>')
        parts.append(f'<text x="{width - 50}" y="{y + 13}" font-size="11">'
                     f'{(row.utilisation or 0) * 100:.0f} %</text>')
    parts.append("</svg>")
    return "".join(parts)
