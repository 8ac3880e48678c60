"""When a station can take an exam: weekly slot templates, dated exceptions, reserved periods and
the next-free-slot search.

A station's week is its ``OpeningPeriod`` rows (several per weekday leave breaks closed); without
any it is open ``opens_at``-``closes_at`` every day, or around the clock without those (what ris
did before templates). ``ScheduleException`` rows close dated periods (holiday, station down,
maintenance). ``SlotReservation`` rows keep weekly periods for urgent cases or inpatients: the
search offers them only to those. Reads only; booking stays in ``worklist.services``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from worklist.models import (
    Device,
    OpeningPeriod,
    Patient,
    Priority,
    ProcedureType,
    ScheduledProcedureStep,
    ScheduleException,
    SlotReservation,
)
from worklist.states import SLOT_OCCUPYING_STEP_STATUSES

#: Steps that occupy their station's time (and their patient's): the grouping of
#: ``worklist.states`` (rule 3 of docs/architecture.md), named here for the search.
OCCUPYING = SLOT_OCCUPYING_STEP_STATUSES
#: Priorities that may take a slot reserved for urgent cases (Requested Procedure Priority).
URGENT_PRIORITIES = frozenset({Priority.STAT, Priority.HIGH})
#: PV1-2 patient class of an inpatient.
INPATIENT_CLASS = "I"

Interval = tuple[dt.datetime, dt.datetime]


def _aware(day: dt.date, time: dt.time) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, time))


def _day_bounds(day: dt.date) -> Interval:
    return _aware(day, dt.time(0)), _aware(day + dt.timedelta(days=1), dt.time(0))


def _subtract(windows: list[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """``windows`` minus every interval of ``holes`` (both half-open)."""
    result = windows
    for hole_start, hole_end in holes:
        cut: list[Interval] = []
        for start, end in result:
            if hole_end <= start or hole_start >= end:
                cut.append((start, end))
                continue
            if start < hole_start:
                cut.append((start, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        result = cut
    return result


@dataclass
class StationWeek:
    """What the search needs of one station, read once: its template, exceptions, reservations."""

    station: Device
    periods: dict[int, list[tuple[dt.time, dt.time]]]
    reservations: dict[int, list[tuple[dt.time, dt.time, str]]]
    exceptions: list[Interval]

    def open_windows(self, day: dt.date) -> list[Interval]:
        """The station's open periods on ``day`` (department time), exceptions removed."""
        if self.periods:
            windows = [
                (_aware(day, a), _aware(day, b)) for a, b in self.periods.get(day.weekday(), [])
            ]
        elif self.station.opens_at is not None and self.station.closes_at is not None:
            closes = self.station.closes_at
            end = (
                _aware(day + dt.timedelta(days=1), dt.time(0))
                if closes == dt.time(0)
                else _aware(day, closes)
            )
            windows = [(_aware(day, self.station.opens_at), end)]
        else:
            windows = [_day_bounds(day)]
        return _subtract(windows, self.exceptions)

    def open_minutes(self, first: dt.date, last: dt.date) -> int | None:
        """Minutes the station is open from ``first`` to ``last`` (both included), exceptions
        removed; None when it has neither template nor hours (open around the clock).

        Counted per weekday from the template instead of building every day's windows: a year
        for 20 stations was 7,300 calls of ``open_windows`` (most of the statistics page's
        time). Only the days an exception touches are built one by one. Wall-clock minutes:
        a daylight-saving day counts as an ordinary one.
        """
        if not self.periods and (self.station.opens_at is None or self.station.closes_at is None):
            return None
        if last < first:
            return 0

        def minutes(a: dt.time, b: dt.time) -> int:
            end = 24 * 60 if b == dt.time(0) else b.hour * 60 + b.minute
            return max(0, end - (a.hour * 60 + a.minute))

        if self.periods:
            per_weekday = {
                weekday: sum(minutes(a, b) for a, b in periods)
                for weekday, periods in self.periods.items()
            }
        else:
            every_day = minutes(self.station.opens_at, self.station.closes_at)
            per_weekday = dict.fromkeys(range(7), every_day)
        days = (last - first).days + 1
        full_weeks, rest = divmod(days, 7)
        total = full_weeks * sum(per_weekday.values())
        for offset in range(rest):
            total += per_weekday.get((first + dt.timedelta(days=offset)).weekday(), 0)
        touched: set[dt.date] = set()
        for start, end in self.exceptions:
            day = max(timezone.localtime(start).date(), first)
            until = min(timezone.localtime(end).date(), last)
            while day <= until:
                touched.add(day)
                day += dt.timedelta(days=1)
        for day in touched:
            kept = sum(int((b - a).total_seconds() // 60) for a, b in self.open_windows(day))
            total -= per_weekday.get(day.weekday(), 0) - kept
        return total

    def reserved(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime, str]]:
        return [
            (_aware(day, a), _aware(day, b), kind)
            for a, b, kind in self.reservations.get(day.weekday(), [])
        ]


def station_weeks(
    stations: Sequence[Device], start: dt.datetime, end: dt.datetime
) -> list[StationWeek]:
    """Templates, reservations and the exceptions overlapping [start, end): three queries."""
    ids = [s.pk for s in stations]
    periods: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for row in OpeningPeriod.objects.filter(station_id__in=ids).order_by("opens_at"):
        periods[row.station_id][row.weekday].append((row.opens_at, row.closes_at))
    reservations: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for row in SlotReservation.objects.filter(station_id__in=ids):
        reservations[row.station_id][row.weekday].append((row.starts_at, row.ends_at, row.kind))
    exceptions: dict[int, list[Interval]] = defaultdict(list)
    for row in ScheduleException.objects.filter(station_id__in=ids, starts__lt=end, ends__gt=start):
        exceptions[row.station_id].append((row.starts, row.ends))
    return [
        StationWeek(
            s,
            dict(periods.get(s.pk, {})),
            dict(reservations.get(s.pk, {})),
            exceptions.get(s.pk, []),
        )
        for s in stations
    ]


def refresh_has_schedule(station_id: int) -> None:
    """Keep ``Device.has_schedule`` true while the station has a template or an exception."""
    has = (
        OpeningPeriod.objects.filter(station_id=station_id).exists()
        or ScheduleException.objects.filter(station_id=station_id).exists()
    )
    device = Device.objects.filter(pk=station_id).exclude(has_schedule=has).first()
    if device is not None:
        # save(), not update(): caches of stations (the HL7 catalogue) listen to post_save.
        device.has_schedule = has
        device.save(update_fields=["has_schedule"])


def on_schedule_changed(sender, instance, **kwargs) -> None:
    """post_save / post_delete of OpeningPeriod and ScheduleException (``WorklistConfig``)."""
    refresh_has_schedule(instance.station_id)


def check_open(station: Device, start: dt.datetime, end: dt.datetime) -> str | None:
    """None when [start, end) lies in one open window of the station, else why not: "closed"
    (outside the template or opening hours) or the exception's kind (HOLIDAY, DOWN, ...)."""
    day = timezone.localtime(start).date()
    exception = (
        ScheduleException.objects.filter(station=station, starts__lt=end, ends__gt=start)
        .order_by("starts")
        .first()
    )
    if exception is not None:
        return exception.kind
    has_template = OpeningPeriod.objects.filter(station=station).exists()
    if not has_template and (station.opens_at is None or station.closes_at is None):
        return None
    week = station_weeks([station], start, end)[0]
    if any(a <= start and end <= b for a, b in week.open_windows(day)):
        return None
    return "closed"


def booking_closed(station: Device, start: dt.datetime, end: dt.datetime) -> bool:
    """[start, end) lies outside the station's opening hours (template or opens_at-closes_at),
    not in a dated exception: what a person may confirm as an extra session."""
    return check_open(station, start, end) == "closed"


@dataclass(frozen=True)
class BookingWarning:
    """Something a person booking by hand should confirm before the slot is taken.

    ``code``: ``outside_hours`` (the station is closed then), ``reserved`` (the time is kept for
    other cases: ``kind`` is the reservation's), ``patient_busy`` (the patient has another exam
    then, ``station`` and ``start`` name it).
    """

    code: str
    station: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    kind: str = ""


def booking_warnings(
    *,
    station: Device,
    start: dt.datetime,
    minutes: int,
    priority: str,
    patient_class: str = "",
    patient: Patient | None = None,
    exclude: int | None = None,
) -> list[BookingWarning]:
    """What a manual booking of ``minutes`` at ``start`` on ``station`` should warn about.

    The next-free-slot search never offers such a start (``next_free_slots``); a person choosing
    a slot on the calendar may still want it (an extra session, an urgent case the order does
    not say is urgent), so the web UI asks for confirmation instead of refusing. The domain
    still refuses what cannot happen: a dated exception, an overlap on the station, the past.
    """
    end = start + dt.timedelta(minutes=minutes)
    warnings: list[BookingWarning] = []
    if booking_closed(station, start, end):
        warnings.append(BookingWarning("outside_hours", station.ae_title, start, end))
    day = timezone.localtime(start).date()
    week = station_weeks([station], start, end)[0]
    for a, b, kind in week.reserved(day):
        if a < end and b > start and not may_use(
            kind, priority=priority, patient_class=patient_class
        ):
            warnings.append(BookingWarning("reserved", station.ae_title, a, b, kind))
    if patient is not None:
        other = (
            ScheduledProcedureStep.objects.filter(
                Q(requested_procedure__order__patient=patient)
                | Q(requested_procedure__order__patient__merged_into=patient),
                status__in=OCCUPYING,
                scheduled_start__lt=end,
                scheduled_end__gt=start,
            )
            .exclude(pk=exclude)
            .select_related("station")
            .order_by("scheduled_start")
            .first()
        )
        if other is not None:
            warnings.append(BookingWarning(
                "patient_busy", other.station.ae_title if other.station else "",
                other.scheduled_start, other.scheduled_end,
            ))
    return warnings


def step_booking_warnings(
    step: ScheduledProcedureStep, *, station: Device, start: dt.datetime,
    minutes: int | None = None,
) -> list[BookingWarning]:
    """``booking_warnings`` for an existing step (book or move): its priority, its patient's
    class and the patient's other exams."""
    procedure = step.requested_procedure
    order = procedure.order
    return booking_warnings(
        station=station,
        start=start,
        minutes=minutes or step.expected_duration_minutes,
        priority=procedure.priority or order.priority,
        patient_class=order.visit.patient_class if order.visit_id else "",
        patient=order.patient,
        exclude=step.pk,
    )


def may_use(kind: str, *, priority: str, patient_class: str) -> bool:
    """May an exam of this priority, for a patient of this class, take a slot reserved for
    ``kind``? Urgent slots: STAT and HIGH; inpatient slots: inpatients, and STAT cases."""
    if kind == SlotReservation.Kind.URGENT:
        return priority in URGENT_PRIORITIES
    if kind == SlotReservation.Kind.INPATIENT:
        return patient_class == INPATIENT_CLASS or priority == Priority.STAT
    return False


def affected_steps(exception: ScheduleException) -> list[ScheduledProcedureStep]:
    """The exams booked on the station during an exception: to be rebooked."""
    return list(
        ScheduledProcedureStep.objects.select_related("requested_procedure__order__patient")
        .filter(
            station=exception.station,
            status__in=OCCUPYING,
            scheduled_start__lt=exception.ends,
            scheduled_end__gt=exception.starts,
        )
        .order_by("scheduled_start")
    )


# --- next free slot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FreeSlot:
    """A start on a station where the exam fits; ``reserved`` names the reservation it uses."""

    station: Device
    start: dt.datetime
    end: dt.datetime
    reserved: str = ""


def stations_for(procedure_type: ProcedureType | None, modality: str) -> list[Device]:
    """The active stations that perform a procedure: those it lists, else its modality's."""
    if procedure_type is not None:
        listed = list(procedure_type.stations.filter(active=True).order_by("ae_title"))
        if listed:
            return listed
    return list(
        Device.objects.filter(kind=Device.Kind.MODALITY, active=True, modality=modality).order_by(
            "ae_title"
        )
    )


def _has_contrast(step_contrast: str, procedure_contrast: bool | None) -> bool:
    return bool(step_contrast) or bool(procedure_contrast)


def next_free_slots(
    *,
    step: ScheduledProcedureStep,
    limit: int = 5,
    after: dt.datetime | None = None,
    horizon_days: int | None = None,
    stations: Sequence[Device] | None = None,
) -> list[FreeSlot]:
    """The first ``limit`` starts, earliest first, where ``step`` fits.

    A start fits when: the station performs the step's procedure; [start, start + expected
    duration) lies in one open window of the station's template on that day, outside its
    exceptions; it overlaps no other exam on the station (unless the station allows
    overbooking) and no other exam of the patient; two contrast exams of the patient lie at least
    RIS_CONTRAST_GAP_MINUTES apart; and a reserved period is used only by the cases it is kept
    for (``may_use``). Starts lie on the station's ``slot_minutes`` grid from the window's
    opening, not before ``after`` (default: now). The step itself is ignored as an obstacle, so
    the same search serves moving a booked exam.
    """
    procedure = step.requested_procedure
    order = procedure.order
    ptype = procedure.procedure_type
    after = after or timezone.now()
    horizon = horizon_days or settings.RIS_FREE_SLOT_HORIZON_DAYS
    duration = dt.timedelta(minutes=step.expected_duration_minutes)
    contrast_gap = dt.timedelta(minutes=settings.RIS_CONTRAST_GAP_MINUTES)
    patient_class = order.visit.patient_class if order.visit_id else ""
    priority = procedure.priority or order.priority
    contrast = _has_contrast(step.contrast_agent, ptype.contrast if ptype else False)
    candidates = list(stations) if stations is not None else stations_for(ptype, step.modality)
    if not candidates:
        return []
    first_day = timezone.localtime(after).date()
    range_start = _day_bounds(first_day)[0]
    range_end = _day_bounds(first_day + dt.timedelta(days=horizon))[0]
    weeks = station_weeks(candidates, range_start, range_end)
    station_busy = _station_busy(candidates, range_start, range_end, exclude=step.pk)
    patient_busy = _patient_busy(order.patient, range_start, range_end, exclude=step.pk)
    found: list[FreeSlot] = []
    for offset in range(horizon):
        day = first_day + dt.timedelta(days=offset)
        today: list[FreeSlot] = []
        for week in weeks:
            today.extend(
                _fitting_on(
                    week, day, after=after, duration=duration,
                    busy=station_busy.get(week.station.pk, []),
                    patient_busy=patient_busy, contrast=contrast, contrast_gap=contrast_gap,
                    priority=priority, patient_class=patient_class, limit=limit,
                )
            )
        today.sort(key=lambda slot: (slot.start, slot.station.ae_title))
        found.extend(today)
        if len(found) >= limit:
            break
    return found[:limit]


def _fitting_on(
    week: StationWeek,
    day: dt.date,
    *,
    after: dt.datetime,
    duration: dt.timedelta,
    busy: list[Interval],
    patient_busy: list[tuple[dt.datetime, dt.datetime, bool]],
    contrast: bool,
    contrast_gap: dt.timedelta,
    priority: str,
    patient_class: str,
    limit: int,
) -> list[FreeSlot]:
    """Up to ``limit`` fitting starts of one station on one day."""
    station = week.station
    grid = dt.timedelta(minutes=max(1, station.slot_minutes))
    reserved = week.reserved(day)
    out: list[FreeSlot] = []
    for open_start, open_end in week.open_windows(day):
        start = open_start
        if start < after:  # first grid point at or after ``after``
            steps = -(-(after - open_start) // grid)
            start = open_start + steps * grid
        while start + duration <= open_end and len(out) < limit:
            end = start + duration
            clash = None if station.allow_overbooking else next(
                ((a, b) for a, b in busy if a < end and b > start), None
            )
            if clash is not None:
                # jump to the first grid point after the clash ends
                start = open_start + -(-(clash[1] - open_start) // grid) * grid
                continue
            if _patient_conflict(start, end, patient_busy, contrast, contrast_gap):
                start += grid
                continue
            kinds = [k for a, b, k in reserved if a < end and b > start]
            if any(not may_use(k, priority=priority, patient_class=patient_class) for k in kinds):
                start += grid
                continue
            out.append(FreeSlot(station, start, end, kinds[0] if kinds else ""))
            start += grid
    return out


def _patient_conflict(
    start: dt.datetime,
    end: dt.datetime,
    patient_busy: list[tuple[dt.datetime, dt.datetime, bool]],
    contrast: bool,
    contrast_gap: dt.timedelta,
) -> bool:
    for a, b, other_contrast in patient_busy:
        gap = contrast_gap if (contrast and other_contrast) else dt.timedelta(0)
        if a - gap < end and b + gap > start:
            return True
    return False


def _station_busy(
    stations: Sequence[Device], start: dt.datetime, end: dt.datetime, *, exclude: int
) -> dict[int, list[Interval]]:
    busy: dict[int, list[Interval]] = defaultdict(list)
    rows = (
        ScheduledProcedureStep.objects.filter(
            station_id__in=[s.pk for s in stations],
            status__in=OCCUPYING,
            scheduled_start__lt=end,
            scheduled_end__gt=start,
        )
        .exclude(pk=exclude)
        .values_list("station_id", "scheduled_start", "scheduled_end")
        .order_by("scheduled_start")
    )
    for station_id, a, b in rows:
        busy[station_id].append((a, b))
    return busy


def _patient_busy(
    patient: Patient, start: dt.datetime, end: dt.datetime, *, exclude: int
) -> list[tuple[dt.datetime, dt.datetime, bool]]:
    """The patient's booked exams in the range (widened by the contrast gap), with whether each
    gives contrast."""
    gap = dt.timedelta(minutes=settings.RIS_CONTRAST_GAP_MINUTES)
    rows = (
        ScheduledProcedureStep.objects.filter(
            Q(requested_procedure__order__patient=patient)
            | Q(requested_procedure__order__patient__merged_into=patient),
            status__in=OCCUPYING,
            scheduled_start__lt=end + gap,
            scheduled_end__gt=start - gap,
        )
        .exclude(pk=exclude)
        .values_list(
            "scheduled_start",
            "scheduled_end",
            "contrast_agent",
            "requested_procedure__procedure_type__contrast",
        )
    )
    return [(a, b, _has_contrast(agent, flag)) for a, b, agent, flag in rows]
