"""Reads behind the web pages, each a fixed number of queries whatever the number of rows shown.

The pages list many steps with their patient and procedure; every list here is one query with
``select_related`` (or one aggregate), so a busy day costs the same number of round trips as a
quiet one (asserted in ``tests/web/test_queries.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, F, Prefetch, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from mpps.forwarding.selectors import with_images
from worklist import housekeeping
from worklist import selectors as worklist_selectors
from worklist.models import (
    AuditEvent,
    Device,
    Order,
    Patient,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatus,
)
from worklist.pn import PersonName
from worklist.states import WORKLIST_STATUSES

#: Default calendar window when no shown station has opening hours.
DEFAULT_OPENS = dt.time(7, 0)
DEFAULT_CLOSES = dt.time(19, 0)
#: Steps that are shown on the calendar (a cancelled step frees its slot and disappears).
CALENDAR_STATUSES = tuple(s for s in StepStatus if s not in (StepStatus.CANCELED,))
#: Steps a technologist follows on the board: waiting, under way, and just finished.
BOARD_STATUSES = (
    StepStatus.SCHEDULED,
    StepStatus.ARRIVED,
    StepStatus.READY,
    StepStatus.STARTED,
    StepStatus.COMPLETED,
    StepStatus.DISCONTINUED,
)

_STEP_RELATED = ("requested_procedure__order__patient", "station")


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The department's day as aware datetimes (a DST day is 23 or 25 hours long)."""
    start = timezone.make_aware(dt.datetime.combine(day, dt.time(0)))
    end = timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0)))
    return start, end


def stations(modality: str = "") -> list[Device]:
    """Active modality stations (the calendar's columns), optionally of one modality."""
    query = Device.objects.filter(kind=Device.Kind.MODALITY, active=True)
    if modality:
        query = query.filter(modality=modality)
    return list(query.order_by("modality", "ae_title"))


def modalities_in_use() -> list[str]:
    return list(
        Device.objects.filter(kind=Device.Kind.MODALITY, active=True)
        .exclude(modality="")
        .order_by("modality")
        .values_list("modality", flat=True)
        .distinct()
    )


def steps_between(
    start: dt.datetime,
    end: dt.datetime,
    *,
    station_ids: list[int] | None = None,
    modality: str = "",
    statuses=CALENDAR_STATUSES,
) -> QuerySet[ScheduledProcedureStep]:
    """Steps whose scheduled time overlaps [start, end), with patient and station joined."""
    query = ScheduledProcedureStep.objects.select_related(*_STEP_RELATED).filter(
        scheduled_start__lt=end, scheduled_start__gte=start - dt.timedelta(days=1),
        scheduled_end__gt=start, status__in=statuses,
    )
    # The extra lower bound on scheduled_start keeps the range on the (station, start) index:
    # no step lasts a day.
    if station_ids is not None:
        query = query.filter(station_id__in=station_ids)
    if modality:
        query = query.filter(modality=modality)
    return query.order_by("scheduled_start", "sps_id")


def modalities_with_steps(start: dt.datetime, end: dt.datetime, *, statuses) -> set[str]:
    """Modalities with at least one step in ``statuses`` starting in [start, end): one query."""
    return set(
        ScheduledProcedureStep.objects.filter(
            scheduled_start__gte=start, scheduled_start__lt=end, status__in=statuses
        )
        .values_list("modality", flat=True)
        .distinct()
        .order_by()
    )


@dataclass(frozen=True, slots=True)
class CalendarStep:
    """What a calendar block shows of a step.

    Read as plain rows (``values_list``) rather than four model instances per step (step,
    procedure, order, patient): for a 400-step day that took the page from 41 to 22 ms CPU
    (with the time zone looked up once in ``build_grid``).
    """

    pk: int
    status: str
    scheduled_start: dt.datetime
    scheduled_end: dt.datetime
    expected_duration_minutes: int
    description: str
    station_id: int | None
    order_id: int
    patient_name: str  # PersonName.display(): ideographic first, then alphabetic


def calendar_steps(
    start: dt.datetime, end: dt.datetime, *, station_ids: list[int]
) -> list[CalendarStep]:
    """The steps of the calendar's stations overlapping [start, end), in one query."""
    rows = steps_between(start, end, station_ids=station_ids).values_list(
        "pk", "status", "scheduled_start", "scheduled_end", "expected_duration_minutes",
        "description", "station_id", "requested_procedure__order_id",
        "requested_procedure__order__patient__name_alphabetic",
        "requested_procedure__order__patient__name_ideographic",
        "requested_procedure__order__patient__name_phonetic",
    )
    return [
        CalendarStep(*row[:8], PersonName(*row[8:]).display())  # type: ignore[arg-type]
        for row in rows
    ]


def unscheduled_steps(*, modality: str = "", limit: int = 50) -> list[ScheduledProcedureStep]:
    query = ScheduledProcedureStep.objects.select_related(*_STEP_RELATED).filter(
        status=StepStatus.UNSCHEDULED
    )
    if modality:
        query = query.filter(modality=modality)
    return list(query.order_by("created_at", "pk")[:limit])


_PRIORITY_RANK = {"STAT": 0, "HIGH": 1, "MEDIUM": 2, "ROUTINE": 3, "LOW": 4}


def fitting_waiting_step(
    *, station_id: int, start: dt.datetime | None, candidates: int = 50
) -> ScheduledProcedureStep | None:
    """The waiting (unscheduled) exam the book form proposes for a slot of this station.

    Three queries: the station, up to ``candidates`` waiting steps of its modality whose
    procedure the station performs (or whose procedure names no station), and the next booking
    on the station after ``start``. Urgent first, then the oldest; an exam longer than the free
    time until the next booking (or closing) is proposed only when none fits.
    """
    station = Device.objects.filter(pk=station_id).first()
    if station is None:
        return None
    waiting = list(
        ScheduledProcedureStep.objects.select_related("requested_procedure")
        .filter(status=StepStatus.UNSCHEDULED, modality=station.modality)
        .filter(
            Q(requested_procedure__procedure_type__stations=station)
            | Q(requested_procedure__procedure_type__stations__isnull=True)
        )
        .distinct()
        .order_by("created_at", "pk")[:candidates]
    )
    if not waiting:
        return None
    waiting.sort(key=lambda s: _PRIORITY_RANK.get(s.requested_procedure.priority, 3))
    if start is None:
        return waiting[0]
    free_until = None
    following = (
        ScheduledProcedureStep.objects.filter(
            station=station, status__in=WORKLIST_STATUSES, scheduled_start__gte=start
        )
        .order_by("scheduled_start")
        .values_list("scheduled_start", flat=True)
        .first()
    )
    if following is not None:
        free_until = following
    if station.closes_at is not None:
        closing = timezone.make_aware(
            dt.datetime.combine(timezone.localtime(start).date(), station.closes_at)
        )
        free_until = min(free_until, closing) if free_until else closing
    if free_until is None:
        return waiting[0]
    free = (free_until - start).total_seconds() / 60
    return next((s for s in waiting if s.expected_duration_minutes <= free), waiting[0])


# --- dashboard --------------------------------------------------------------------------------


@dataclass
class StationDay:
    station: Device | None
    counts: dict[str, int] = field(default_factory=dict)
    next_steps: list[ScheduledProcedureStep] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Dashboard:
    day: dt.date
    rows: list[StationDay]
    totals: dict[str, int]
    by_modality: dict[str, dict[str, int]]
    unscheduled: int
    #: Steps of any day still waiting RIS_STEP_OVERDUE_HOURS after their end (not yet handled).
    overdue: int = 0

    @property
    def total(self) -> int:
        return sum(self.totals.values())


def dashboard(day: dt.date, *, next_per_station: int = 3) -> Dashboard:
    """Counts by status per station and modality, and the next patients of each station.

    Four queries: stations, one GROUP BY for the counts, one windowed query for the next patients
    (ROW_NUMBER per station), one count of unscheduled steps.
    """
    start, end = day_bounds(day)
    rows = {device.pk: StationDay(device) for device in stations()}
    totals: dict[str, int] = {}
    by_modality: dict[str, dict[str, int]] = {}
    counts = (
        ScheduledProcedureStep.objects.filter(scheduled_start__gte=start, scheduled_start__lt=end)
        .values_list("station_id", "modality", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for station_id, modality, status, n in counts:
        row = rows.get(station_id)
        if row is None:
            row = rows[station_id] = StationDay(None)
        row.counts[status] = row.counts.get(status, 0) + n
        totals[status] = totals.get(status, 0) + n
        per = by_modality.setdefault(modality, {})
        per[status] = per.get(status, 0) + n
    # Everyone still to be examined today, earliest first (a late patient stays on the list).
    upcoming = (
        ScheduledProcedureStep.objects.select_related(*_STEP_RELATED)
        .filter(
            scheduled_start__gte=start,
            scheduled_start__lt=end,
            status__in=WORKLIST_STATUSES,
        )
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("station_id")], order_by=F("scheduled_start").asc()
            )
        )
        .filter(rank__lte=next_per_station)
        .order_by("scheduled_start")
    )
    overdue_before = housekeeping.overdue_cutoff()
    for step in upcoming:
        # Still waiting hours after its end (worklist.housekeeping): marked on the dashboard.
        step.overdue = bool(
            overdue_before and step.scheduled_end and step.scheduled_end < overdue_before
        )
        row = rows.get(step.station_id)
        if row is not None:
            row.next_steps.append(step)
    # The waiting-for-a-slot and overdue counts in one query.
    waiting = ScheduledProcedureStep.objects.aggregate(
        unscheduled=Count("id", filter=Q(status=StepStatus.UNSCHEDULED)),
        overdue=Count("id", filter=housekeeping.overdue_q()),
    )
    unscheduled = waiting["unscheduled"]
    shown = [row for row in rows.values() if row.station is not None]
    # Steps without a station (or on an inactive one) are summed into one "other" row.
    orphans = [row for row in rows.values() if row.station is None]
    if orphans:
        other = StationDay(None)
        for row in orphans:
            for status, n in row.counts.items():
                other.counts[status] = other.counts.get(status, 0) + n
        shown.append(other)
    return Dashboard(
        day, shown, totals, dict(sorted(by_modality.items())), unscheduled, waiting["overdue"]
    )


# --- patients ---------------------------------------------------------------------------------



def patient_search(
    *, text: str = "", birth_date: dt.date | None = None, limit: int = 50
) -> list[Patient]:
    """Patients found by ID, any spelling of the name (worklist.selectors.patients_matching)
    and/or birth date."""
    text = text.strip()
    if not text and birth_date is None:
        return []
    query = (
        worklist_selectors.patients_matching(text)
        if text
        else Patient.objects.filter(merged_into__isnull=True)
    )
    if birth_date is not None:
        query = query.filter(birth_date=birth_date)
    return list(query.order_by("family_name", "given_name", "patient_id")[:limit])


def patient_orders(patient: Patient) -> list[Order]:
    return list(
        Order.objects.filter(patient=patient)
        .prefetch_related("procedures__steps__station")
        .order_by("-created_at")
    )


# --- orders -----------------------------------------------------------------------------------


def order_procedures(order: Order) -> list[RequestedProcedure]:
    """The order's procedures and their steps, each with its station and images: two queries."""
    steps = with_images(ScheduledProcedureStep.objects.select_related("station"))
    return list(
        RequestedProcedure.objects.filter(order=order)
        .prefetch_related(Prefetch("steps", queryset=steps))
        .order_by("pk")
    )


def order_audit_trail(order: Order, procedures: list[RequestedProcedure]) -> list[AuditEvent]:
    """The order's own events and those of its steps, newest first."""
    step_ids = [str(step.pk) for proc in procedures for step in proc.steps.all()]
    return list(
        AuditEvent.objects.filter(
            Q(object_type=Order._meta.label, object_id=str(order.pk))
            | Q(object_type=ScheduledProcedureStep._meta.label, object_id__in=step_ids)
        )
        .select_related("user")
        .order_by("-at", "-id")[:200]
    )
