"""Helpers the views share: reading query parameters without ever failing on bad input."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.dateparse import parse_date

from worklist.audit import Actor
from worklist.models import Modality

_EARLIEST = dt.date(1900, 1, 1)
_LATEST = dt.date(2999, 12, 31)


def actor(request) -> Actor:
    return Actor.for_user(request.user)


def day_param(request, name: str = "date") -> dt.date:
    """The ``?date=`` of the page, today (department time) when absent or not a date."""
    try:
        value = parse_date(request.GET.get(name, "") or "")
    except ValueError:
        value = None
    # A date near the calendar's ends would overflow when the page adds a day or a week.
    if value is None or not (_EARLIEST <= value <= _LATEST):
        return timezone.localdate()
    return value


def modality_param(request) -> str:
    value = (request.GET.get("modality") or "").upper()
    return value if value in Modality.values else ""


def int_param(request, name: str) -> int | None:
    try:
        return int(request.GET.get(name, ""))
    except ValueError:
        return None


def safe_next(request, default: str) -> str:
    """A same-site ``next`` URL to go back to after a POST, else ``default``."""
    from django.utils.http import url_has_allowed_host_and_scheme

    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
