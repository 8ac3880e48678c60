"""Liveness of every listener and of the database, as served by ``GET /healthz``.

``status`` is ``ok``, ``degraded`` (every listener up, but an outbound destination failing: see
``outbound``, the queue per destination) or ``down`` (a listener or the database; HTTP 503).

The web child cannot see the other children's memory, so it checks each the way a peer would:
a DICOM C-ECHO to the AE, a TCP connect to the MLLP port, the scheduler's heartbeat row, and a
``SELECT 1`` on the database.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from ris.models import Heartbeat


def _local_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def check_database() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "down", reported as such
        return {"ok": False, "vendor": connection.vendor, "error": str(exc)}
    return {
        "ok": True,
        "vendor": connection.vendor,
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def health_ae_title() -> str:
    """The calling AE title of ris's own health check: 16 characters derived from the secret key.

    The DICOM listener always admits it, also with RIS_DICOM_REQUIRE_KNOWN_AE on (a health check
    that depends on a setting a site is told to turn on fails there for ever). Derived from the
    secret, not a fixed name, so that turning the allow-list on does not open a door that any
    peer could walk through by calling itself "RIS-HEALTH"; every child of one ris (and every ris
    sharing the secret key) computes the same title.
    """
    digest = hmac.new(settings.SECRET_KEY.encode(), b"ris health check AE", hashlib.sha256)
    return "HC" + digest.hexdigest()[:14].upper()


def check_dicom() -> dict[str, Any]:
    from pynetdicom.sop_class import Verification

    from worklist.dimse import new_ae

    host, port = _local_host(settings.RIS_DICOM_HOST), settings.RIS_DICOM_PORT
    ae = new_ae(health_ae_title())
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 3
    assoc = ae.associate(host, port, ae_title=settings.RIS_AE_TITLE)
    if not assoc.is_established:
        return {"ok": False, "address": f"{host}:{port}", "error": "association not accepted"}
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    ok = bool(status) and status.Status == 0x0000
    return {"ok": ok, "address": f"{host}:{port}", "ae_title": settings.RIS_AE_TITLE}


def check_mllp() -> dict[str, Any]:
    host, port = _local_host(settings.RIS_MLLP_HOST), settings.RIS_MLLP_PORT
    try:
        with socket.create_connection((host, port), timeout=3):
            pass
    except OSError as exc:
        return {"ok": False, "address": f"{host}:{port}", "error": str(exc)}
    return {"ok": True, "address": f"{host}:{port}"}


def check_events() -> dict[str, Any]:
    """The UPS-RS event channel's listener accepts connections (a TCP connect, as for MLLP)."""
    host, _, port = settings.RIS_UPS_EVENTS_HTTP.rpartition(":")
    host = _local_host(host or "127.0.0.1")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as exc:
        return {"ok": False, "address": f"{host}:{port}", "error": str(exc)}
    return {"ok": True, "address": f"{host}:{port}"}


def check_scheduler() -> dict[str, Any]:
    beat = Heartbeat.objects.filter(name="scheduler").first()
    if beat is None:
        return {"ok": False, "error": "no heartbeat yet"}
    age = (timezone.now() - beat.beat_at).total_seconds()
    limit = 3 * settings.RIS_SCHEDULER_HEARTBEAT_SECONDS + 5
    return {"ok": age <= limit, "last_beat_seconds_ago": round(age, 1), "detail": beat.detail}


def health(listeners: list[str]) -> dict[str, Any]:
    checks = {"database": check_database}
    available = {"dicom": check_dicom, "mllp": check_mllp, "scheduler": check_scheduler,
                 "events": check_events}
    for name in listeners:
        if name in available:
            checks[name] = available[name]
    report: dict[str, Any] = {"time": timezone.now().isoformat()}
    for name, check in checks.items():
        try:
            report[name] = check()
        except Exception as exc:  # noqa: BLE001 - a broken check is a failed check
            report[name] = {"ok": False, "error": str(exc)}
    report["ok"] = all(v["ok"] for k, v in report.items() if isinstance(v, dict))
    report["web"] = {"ok": True, "address": settings.RIS_HTTP}
    report["outbound"] = check_outbound() if report["database"]["ok"] else {"ok": False}
    if not report["ok"]:
        report["status"] = "down"
    else:
        report["status"] = "degraded" if report["outbound"].get("degraded") else "ok"
    return report


def check_outbound() -> dict[str, Any]:
    """The outbound queue per destination; a failing peer degrades, it does not take ris down."""
    from ris import outbound_queue

    try:
        return outbound_queue.queue_summary()
    except Exception as exc:  # noqa: BLE001 - a broken check must not break /healthz
        return {"ok": True, "degraded": True, "error": str(exc)}


def public(report: dict[str, Any]) -> dict[str, Any]:
    """What an anonymous caller (a load balancer) sees: up or down, per check, nothing else.

    The full report names listener addresses, the scheduler's PID and, during an outage, the
    database driver's error text: details for operators (``RIS_HEALTH_TOKEN``), not the world.
    """
    reduced: dict[str, Any] = {"ok": report["ok"]}
    if "status" in report:
        reduced["status"] = report["status"]  # ok / degraded / down: no detail in it
    for name, value in report.items():
        if isinstance(value, dict):
            reduced[name] = {"ok": bool(value.get("ok"))}
    return reduced


def may_see_details(request) -> bool:
    """A staff user's session, or ``Authorization: Bearer <RIS_HEALTH_TOKEN>``."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    token = settings.RIS_HEALTH_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def heartbeat(name: str, detail: str = "") -> None:
    Heartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": timezone.now(), "detail": detail[:200]}
    )


__all__ = ["health", "health_ae_title", "heartbeat", "may_see_details", "public"]
