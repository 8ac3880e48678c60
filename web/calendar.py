"""Layout of the scheduling calendar: time-slot rows, station (or day) columns, step blocks.

The grid is computed here, in department-local wall time, and rendered by a plain template with
CSS positions, so the page works without JavaScript and a tablet shows the same thing as a desk
PC. A block's height is its expected duration, so a 40-minute MR covers its slots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from web.selectors import DEFAULT_CLOSES, DEFAULT_OPENS, CalendarStep
from worklist.models import Device, StepStatus

SLOT_CHOICES = (5, 10, 15, 20, 30, 60)


@dataclass
class Slot:
    day: dt.date
    time: dt.time
    open: bool


@dataclass
class Block:
    step: CalendarStep
    top: float  # in slots from the top of the grid
    span: float  # in slots
    lane: int = 0
    lanes: int = 1
    # Filled by ``label_blocks`` for the template, so that rendering 400 blocks is printing.
    href: str = ""
    movable: bool = False
    start: str = ""
    who: str = ""
    status: str = ""


@dataclass
class Column:
    station: Device
    day: dt.date
    slots: list[Slot] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    slots_html: SafeString = mark_safe("")  # noqa: S308 - empty
    blocks_html: SafeString = mark_safe("")  # noqa: S308 - empty


@dataclass
class Grid:
    day: dt.date
    slot_minutes: int
    first: dt.time
    times: list[dt.time]
    columns: list[Column]

    @property
    def rows(self) -> int:
        return len(self.times)


def _minutes(value: dt.time) -> int:
    return value.hour * 60 + value.minute


def _window(
    stations: Iterable[Device],
    local_steps: list[tuple[CalendarStep, dt.datetime, dt.datetime]],
    days: list[dt.date],
) -> tuple[int, int]:
    """First and last minute shown: the widest opening hours, widened to fit every step."""
    opens = [s.opens_at for s in stations if s.opens_at and s.closes_at]
    closes = [s.closes_at for s in stations if s.opens_at and s.closes_at]
    first = min(map(_minutes, opens)) if opens else _minutes(DEFAULT_OPENS)
    last = max(_minutes(c) or 24 * 60 for c in closes) if closes else _minutes(DEFAULT_CLOSES)
    for _, start, end in local_steps:
        if start.date() in days:
            first = min(first, _minutes(start.time()))
            last = max(last, 24 * 60 if end.date() > start.date() else _minutes(end.time()))
    first = first // 60 * 60
    last = min(24 * 60, -(-last // 60) * 60)
    return first, max(last, first + 60)


def _is_open(station: Device, minute: int, slot_minutes: int) -> bool:
    if station.opens_at is None or station.closes_at is None:
        return True
    closes = _minutes(station.closes_at) or 24 * 60
    return _minutes(station.opens_at) <= minute and minute + slot_minutes <= closes


def _assign_lanes(blocks: list[Block]) -> None:
    """Side by side placement of overlapping blocks (overbooked stations)."""
    blocks.sort(key=lambda b: (b.top, -b.span))
    cluster: list[Block] = []
    cluster_end = -1.0
    lane_ends: list[float] = []

    def close_cluster() -> None:
        for block in cluster:
            block.lanes = len(lane_ends)

    for block in blocks:
        if block.top >= cluster_end and cluster:
            close_cluster()
            cluster, lane_ends = [], []
        for lane, end in enumerate(lane_ends):
            if end <= block.top:
                block.lane, lane_ends[lane] = lane, block.top + block.span
                break
        else:
            block.lane = len(lane_ends)
            lane_ends.append(block.top + block.span)
        cluster.append(block)
        cluster_end = max(cluster_end, block.top + block.span)
    if cluster:
        close_cluster()


def build_grid(
    *,
    columns: list[tuple[Device, dt.date]],
    steps: list[CalendarStep],
    slot_minutes: int,
) -> Grid:
    """Place ``steps`` into one column per (station, day) pair."""
    days = sorted({day for _, day in columns})
    tz = timezone.get_current_timezone()
    local_steps = [
        (step, step.scheduled_start.astimezone(tz), step.scheduled_end.astimezone(tz))
        for step in steps
    ]
    first, last = _window({station for station, _ in columns}, local_steps, days)
    minutes = list(range(first, last, slot_minutes))
    times = [dt.time(m // 60, m % 60) for m in minutes]
    by_key: dict[tuple[int, dt.date], Column] = {}
    grid_columns = []
    for station, day in columns:
        column = Column(station, day)
        column.slots = [Slot(day, t, _is_open(station, m, slot_minutes))
                        for t, m in zip(times, minutes, strict=True)]
        by_key[(station.pk, day)] = column
        grid_columns.append(column)
    for step, start, _ in local_steps:
        column = by_key.get((step.station_id, start.date()))
        if column is None:
            continue
        top = (_minutes(start.time()) + start.second / 60 - first) / slot_minutes
        span = max(step.expected_duration_minutes, 1) / slot_minutes
        block = Block(step, top, min(span, len(times) - top), start=f"{start:%H:%M}")
        column.blocks.append(block)
    for column in grid_columns:
        _assign_lanes(column.blocks)
    return Grid(days[0] if days else timezone.localdate(), slot_minutes,
                dt.time(first // 60, first % 60), times, grid_columns)


def week_of(day: dt.date) -> list[dt.date]:
    monday = day - dt.timedelta(days=day.weekday())
    return [monday + dt.timedelta(days=i) for i in range(7)]


def render_slots(grid: Grid, *, book_url: str | None, book_label: str, closed_label: str) -> None:
    """Pre-render each column's slot cells (a day view has ~1,000): links to book a free slot
    when the user may book, shaded cells when the station is closed.

    Built here rather than in the template because Django's template engine costs about a
    millisecond per cell with its tags and filters; every value is escaped.
    """
    for column in grid.columns:
        parts = []
        day = column.day.isoformat()
        title = escape(f"{book_label} {column.station.ae_title}")
        closed = escape(closed_label)
        for slot in column.slots:
            hhmm = f"{slot.time:%H:%M}"
            hour = " hour" if slot.time.minute == 0 else ""
            if slot.open and book_url:
                parts.append(
                    f'<a class="slot{hour}" href="{book_url}?station={column.station.pk}'
                    f'&amp;date={day}&amp;time={hhmm}" data-time="{hhmm}" '
                    f'title="{title} {hhmm}"></a>'
                )
            elif slot.open:
                parts.append(f'<div class="slot{hour}"></div>')
            else:
                parts.append(f'<div class="slot closed{hour}" title="{closed}"></div>')
        column.slots_html = mark_safe("".join(parts))  # noqa: S308 - escaped above


def label_blocks(
    grid: Grid, *, move_url, detail_url, can_move: bool, movable, highlight: int | None = None
) -> None:
    """Pre-render each column's step blocks (a busy day has hundreds), like ``render_slots``.

    Plain f-strings over escaped values rather than ``format_html`` and
    ``get_status_display``: the display looks its label up by hashing every lazy choice label
    (a gettext each), which was half of the day calendar's time for 400 blocks. The labels are
    translated once per page here instead. ``highlight``: the step just booked or moved, marked
    so that the page scrolls to it (``ris.js``).
    """
    labels = {value: str(label) for value, label in StepStatus.choices}
    for column in grid.columns:
        parts = []
        for block in column.blocks:
            step = block.step
            block.movable = can_move and step.status in movable
            block.href = move_url(step.pk) if block.movable else detail_url(step.order_id)
            block.who = step.patient_name
            block.status = labels.get(step.status, step.status)
            href, who, what = escape(block.href), escape(block.who), escape(step.description)
            status = escape(block.status)
            drag = (
                f' draggable="true" data-move-url="{href}" '
                f'data-duration="{escape(str(step.expected_duration_minutes))}"'
                if block.movable else ""
            )
            marked = " highlight" if step.pk == highlight else ""
            parts.append(
                f'<a id="block-{step.pk}" class="block st-{escape(step.status.lower())}{marked}" '
                f'style="--top: {block.top:.3f}; '
                f'--span: {block.span:.3f}; --lane: {block.lane}; --lanes: {block.lanes};" '
                f'href="{href}"{drag} title="{block.start} {who} · {what} · {status}">'
                f'<span class="t">{block.start}</span> <span class="who">{who}</span>'
                f'<span class="what">{what}</span></a>'
            )
        column.blocks_html = mark_safe("".join(parts))  # noqa: S308 - every value escaped
