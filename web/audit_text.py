"""The audit trail as sentences people read, in their language, instead of raw codes.

The trail stores what happened as codes (``step.book``, ``SC``, ``ARRIVED``) so that tools can
query it; the order page turns each event into one translated sentence with the facts the event
carries (station, time, old and new status). ``SENTENCES`` lists every action the domain writes;
a test keeps it complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils.translation import gettext as _

from web.templatetags.ris_web import local_time, reason_label
from worklist.models import AuditEvent, Device, OrderStatus, Priority, StepStatus


def _step_status(value) -> str:
    try:
        return str(StepStatus(value).label).lower()
    except ValueError:
        return str(value or "")


def _order_status(value) -> str:
    try:
        return str(OrderStatus(value).label).lower()
    except ValueError:
        return str(value or "")


@dataclass(frozen=True)
class _Facts:
    before: dict
    after: dict
    stations: dict[int, str]

    def station(self) -> str:
        return self.stations.get(self.after.get("station_id"), "—")

    def exam(self) -> str:
        return str(self.after.get("description") or "")

    def start(self) -> str:
        return local_time(self.after.get("scheduled_start") or "") or "—"


#: action -> sentence builder. Step status actions are ``step.<status>`` (services write them).
SENTENCES: dict[str, Callable[[_Facts], str]] = {
    "patient.create": lambda f: _("Patient registered."),
    "patient.update": lambda f: _("Patient details changed."),
    "patient.merge": lambda f: _("Patient record merged into another one."),
    "visit.create": lambda f: _("Visit registered."),
    "visit.update": lambda f: _("Visit details changed."),
    "order.create": lambda f: _("Order created."),
    "order.update": lambda f: _("Order details changed."),
    "order.status": lambda f: _("Order status changed from %(old)s to %(new)s.")
    % {"old": _order_status(f.before.get("status")), "new": _order_status(f.after.get("status"))},
    "procedure.change": lambda f: _("Procedure changed to %(description)s.")
    % {"description": f.after.get("description", "")},
    "procedure.update": lambda f: _("Priority changed to %(priority)s.")
    % {"priority": _priority(f.after.get("priority"))},
    "step.create": lambda f: _("Exam created (%(status)s).")
    % {"status": _step_status(f.after.get("status"))},
    "step.import": lambda f: _("Exam taken over from a worklist file."),
    "step.update": lambda f: _("Exam changed to %(description)s.")
    % {"description": f.after.get("description", "")},
    # An order may hold several exams: the sentence names the one booked ("CT head booked on
    # CT1 for ..."), from the step's snapshot.
    "step.book": lambda f: (_("%(exam)s booked on %(station)s for %(start)s.") if f.exam() else
                            _("Booked on %(station)s for %(start)s."))
    % {"exam": f.exam(), "station": f.station(), "start": f.start()},
    "step.reschedule": lambda f: (_("%(exam)s moved to %(station)s at %(start)s.") if f.exam()
                                  else _("Moved to %(station)s at %(start)s."))
    % {"exam": f.exam(), "station": f.station(), "start": f.start()},
    "step.scheduled": lambda f: _("Back to scheduled."),
    "step.arrived": lambda f: _("Checked in: the patient has arrived."),
    "step.ready": lambda f: _("Checked in: the patient is ready for the exam."),
    "step.started": lambda f: _("The modality started the exam."),
    "step.completed": lambda f: _("The modality completed the exam."),
    "step.discontinued": lambda f: _("The modality discontinued the exam."),
    "step.canceled": lambda f: _("Exam cancelled."),
    "step.undo": lambda f: _("Undone: the exam is %(status)s again.")
    % {"status": _step_status(f.after.get("status"))},
}


def _priority(value) -> str:
    try:
        return str(Priority(value).label)
    except ValueError:
        return str(value or "")


@dataclass(frozen=True)
class AuditLine:
    event: AuditEvent
    sentence: str
    detail: str


def audit_lines(events: Iterable[AuditEvent]) -> list[AuditLine]:
    """Each event with its sentence and a readable detail; one query for the station names."""
    events = list(events)
    station_ids = {
        (e.after or {}).get("station_id")
        for e in events
        if e.action in ("step.book", "step.reschedule")
    } - {None}
    stations = dict(
        Device.objects.filter(pk__in=station_ids).values_list("pk", "ae_title")
    ) if station_ids else {}
    lines = []
    for event in events:
        facts = _Facts(event.before or {}, event.after or {}, stations)
        build = SENTENCES.get(event.action)
        if build is None:
            sentence = _("Recorded change.")
        else:
            sentence = build(facts)
        detail = "" if event.action == "step.undo" else reason_label(event.detail or "")
        lines.append(AuditLine(event, sentence, detail))
    return lines
