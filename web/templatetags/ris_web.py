"""Template helpers of the web UI: role checks, person names and status styling."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from mpps.forwarding import selectors as forwarding
from ris.roles import Role, has_role
from web.notes import translate_note
from worklist import age
from worklist.pn import PersonName
from worklist.services import OUTSIDE_HOURS_CONFIRMED

register = template.Library()


@register.filter(name="has_role")
def has_role_filter(user, role_names: str) -> bool:
    """``user|has_role:"front desk,technologist"``: does the user hold one of these roles."""
    roles = [Role(name.strip()) for name in role_names.split(",") if name.strip()]
    return has_role(user, *roles)


@register.filter
def pn(patient) -> str:
    """A patient's name for people: ideographic first when present, then alphabetic."""
    return patient.person_name.display() if patient is not None else ""


@register.filter
def pn_group(value: str) -> str:
    return (value or "").replace("^", " ").strip()


@register.filter
def pn_text(value: str) -> str:
    """A PN string (``Zhou^Min=周^敏``) as people read it (``周 敏 / Zhou Min``)."""
    try:
        return PersonName.parse(value or "").display()
    except ValueError:
        return value


#: An Age String's unit as people read it; ``%(n)s`` is the number.
_AGE_UNITS = {
    "Y": lambda n: ngettext("%(n)s year", "%(n)s years", n) % {"n": n},
    "M": lambda n: ngettext("%(n)s month", "%(n)s months", n) % {"n": n},
    "W": lambda n: ngettext("%(n)s week", "%(n)s weeks", n) % {"n": n},
    "D": lambda n: ngettext("%(n)s day", "%(n)s days", n) % {"n": n},
}


@register.filter
def age_label(value: str) -> str:
    """An Age String (``045Y``) as people say it (``45 years``, ``45 岁``)."""
    if not value or len(value) != 4 or value[3] not in _AGE_UNITS or not value[:3].isdigit():
        return value or ""
    return _AGE_UNITS[value[3]](int(value[:3]))


@register.filter
def birth(patient) -> str:
    """The birth date as far as it is known (``1950``, ``1950-03``, ``1950-03-12``), else the
    stated age (``45 years``): what the front desk and the technologist need to tell patients
    apart, with nothing invented."""
    if patient is None:
        return ""
    if patient.birth_date is not None:
        formats = {"Y": "%Y", "M": "%Y-%m"}
        return patient.birth_date.strftime(formats.get(patient.birth_date_precision, "%Y-%m-%d"))
    served = age.served_age(age=patient.age, birth_date=None, precision="",
                            on=timezone.localdate())
    return age_label(served)


@register.filter
def local_time(value: str) -> str:
    """An ISO datetime from the audit trail's JSON, in the department's time zone."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return value or ""
    if timezone.is_naive(moment):
        return moment.strftime("%Y-%m-%d %H:%M")
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


@register.filter
def status_class(status: str) -> str:
    return f"st-{(status or '').lower()}"


#: The buttons are verbs (签到 / 候检 / 爽约), the statuses they lead to are states
#: (已签到 / 候检中): the same English word, two contexts (docs/zh-glossary.md).
CHECKIN_LABELS = {
    "arrived": pgettext_lazy("check-in action", "Arrived"),
    "ready": pgettext_lazy("check-in action", "Ready"),
    "no_show": pgettext_lazy("check-in action", "No-show"),
    "undo": _("Undo"),
}


@register.filter
def checkin_label(action: str) -> str:
    return CHECKIN_LABELS.get(action, action)


@register.filter
def checkin_url(action: str) -> str:
    """The URL name an action's button posts to."""
    return "web:undo" if action == "undo" else "web:checkin"


@register.filter
def reason_label(reason: str) -> str:
    """A step's or order's status reason for people: a no-show's or a desk cancel's code
    becomes its translated label."""
    from web.forms import CANCEL_REASONS, NO_SHOW_REASONS

    if reason == "no-show":
        return str(_("No-show"))
    if reason.startswith("no-show:"):
        code = reason.partition(":")[2]
        return f"{_('No-show')}: {NO_SHOW_REASONS.get(code, code)}"
    if reason == OUTSIDE_HOURS_CONFIRMED:
        return str(_("Booked outside the opening hours, confirmed."))
    if reason.startswith("cancel:"):
        code = reason.partition(":")[2]
        return f"{_('Cancelled')}: {CANCEL_REASONS.get(code, code)}"
    return translate_note(reason)


#: Outbound job kinds (settings.RIS_OUTBOUND_SENDERS) as people read them.
_JOB_KINDS = {
    "hl7.order_status": _("HL7 message to the HIS"),
    "dicom.mpps": _("MPPS to the PACS"),
    "dicom.store": _("Images to the PACS"),
    "dicom.commit": _("Storage commitment request"),
}

#: HL7 table 0357 (message error condition codes) in the user's language.
_HL7_CONDITIONS = {
    "0": _("Message accepted"),
    "100": _("Segment sequence error"),
    "101": _("Required field missing"),
    "102": _("Data type error"),
    "103": _("Table value not found"),
    "200": _("Unsupported message type"),
    "201": _("Unsupported event code"),
    "202": _("Unsupported processing ID"),
    "203": _("Unsupported version ID"),
    "204": _("Unknown key identifier"),
    "205": _("Duplicate key identifier"),
    "206": _("Application record locked"),
    "207": _("Application internal error"),
}


@register.filter
def job_kind(kind: str) -> str:
    return str(_JOB_KINDS.get(kind, kind))


@register.filter
def hl7_condition(code: str) -> str:
    """An HL7 table 0357 error condition code (the ACK's ERR) as a sentence."""
    return str(_HL7_CONDITIONS.get(code or "", code or ""))


@register.filter
def note(text: str) -> str:
    """A note ris wrote (a performed step's reconciliation, a gateway match) in the user's
    language (web.notes)."""
    return translate_note(text or "")


@register.filter
def step_images(step):
    """The step's received and "at PACS" counts, or None (no query for ``with_images`` steps)."""
    return forwarding.images_of(step)


@register.filter
def get_item(mapping, key):
    return mapping.get(key, 0) if mapping else 0


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters changed (empty values removed)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in ("", None):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag(takes_context=True)
def outbound_alerts(context) -> list:
    """Outbound destinations in alert (a FAILED job, or down too long), for the admins' banner.

    Only computed for admins (two queries): other roles cannot act on the queue.
    """
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not has_role(user, Role.ADMIN):
        return []
    from ris import outbound_queue

    return outbound_queue.alerts()
