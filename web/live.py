"""Live pages: the one mechanism by which open pages follow changes made anywhere (HL7, MPPS,
images, another desk) without a full reload.

A live region polls its own URL with htmx every ``POLL_SECONDS`` and sends the version it shows
(``?v=``, an ETag in all but name: a query parameter survives htmx's history cache and proxies
that strip ``If-None-Match``). The view computes the current version with one aggregate query;
unchanged, it answers ``204 No Content``, which htmx does not swap, so a quiet page costs one
small query per poll and keeps the user's focus. Changed, it answers the region rendered anew,
which carries the new version. A region pauses while the user is in the middle of something
(a no-show confirmation open), see ``templates/web/_live.html``.
"""

from __future__ import annotations

import hashlib

from django.db.models import Count, Max
from django.http import HttpResponse

from worklist.models import Order

#: How often a live region asks; MPPS shows on an open page within about this delay.
POLL_SECONDS = 2


def fingerprint(*parts: object) -> str:
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:16]


def not_modified(request, version: str) -> HttpResponse | None:
    """``204`` for a poll of a region whose version has not changed, else None (render it)."""
    if request.htmx and request.GET.get("v") == version:  # only a poll sends ?v=
        response = HttpResponse(status=204)
        response["ETag"] = f'"{version}"'
        return response
    return None


def steps_version(steps) -> str:
    """The version of a list of steps: how many, and the latest change of any of them.

    Every status change (check-in, MPPS, HL7) and every move saves ``updated_at``; a step that
    leaves the list changes the count.
    """
    row = steps.order_by().aggregate(n=Count("id"), last=Max("updated_at"))
    return fingerprint(row["n"], row["last"])


def order_version(order: Order) -> str:
    """The version of an order page: the order's and its steps' latest changes, one query."""
    row = Order.objects.filter(pk=order.pk).aggregate(
        order=Max("updated_at"),
        steps=Max("procedures__steps__updated_at"),
        n=Count("procedures__steps"),
    )
    return fingerprint(row["order"], row["steps"], row["n"])


def context(request, *, region: str, version: str, url: str | None = None) -> dict:
    """What ``_live.html`` needs: the region's id, its version and the URL it polls."""
    return {
        "live_id": region,
        "live_version": version,
        "live_url": url or request.path + (
            "?" + _without_version(request) if _without_version(request) else ""
        ),
        "live_seconds": POLL_SECONDS,
    }


def _without_version(request) -> str:
    query = request.GET.copy()
    query.pop("v", None)
    return query.urlencode()


def is_poll(request, region: str) -> bool:
    """Is this request a live region's poll (rather than a page load or another htmx call)?"""
    return bool(request.htmx) and request.htmx.target == region
