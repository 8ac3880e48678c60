"""Audit of authentication: logins (web form, admin, API token), failures, logouts, lockouts.

Receivers of Django's ``user_logged_in`` / ``user_logged_out`` / ``user_login_failed`` and
django-axes' ``user_locked_out``, connected in ``RisConfig.ready``. Password guessing is limited by
django-axes with its database handler: the failure count lives in the database, so every gunicorn
worker and every ris process behind a load balancer shares one limit (``RIS_LOGIN_FAILURE_LIMIT``
failures per username and client address, then ``RIS_LOGIN_LOCKOUT_MINUTES`` locked).
"""

from __future__ import annotations

import logging

from axes.backends import AxesStandaloneBackend

from worklist.audit import Actor, record_access

logger = logging.getLogger("ris.security")

USER_OBJECT = "auth.User"


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' check, for authentications that come with a request (every network login).

    An ``authenticate()`` without one is in-process code (a management command, a test client's
    ``login``): there is no client to lock out, and axes would raise instead of answering.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_address(request) -> str:
    if request is None:
        return ""
    return str(request.META.get("REMOTE_ADDR", ""))


def _channel(request) -> str:
    path = getattr(request, "path", "") or ""
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "web"


def on_logged_in(sender, request, user, **kwargs) -> None:
    address = client_address(request)
    record_access(Actor.for_user(user), "auth.login", object_type=USER_OBJECT, object_id=user.pk,
                  detail=f"{_channel(request)} login from {address}", after={"address": address})
    logger.info("login of %s from %s (%s)", user.get_username(), address, _channel(request))


def on_logged_out(sender, request, user, **kwargs) -> None:
    if user is None:
        return
    address = client_address(request)
    record_access(Actor.for_user(user), "auth.logout", object_type=USER_OBJECT, object_id=user.pk,
                  detail=f"logout from {address}", after={"address": address})


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str((credentials or {}).get("username", ""))[:150]
    address = client_address(request)
    record_access(Actor.system("login"), "auth.login_failed", object_type=USER_OBJECT,
                  object_id=username, detail=f"{_channel(request)} login failed from {address}",
                  after={"address": address})
    logger.warning("failed login for %r from %s (%s)", username, address, _channel(request))


def on_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    record_access(Actor.system("login"), "auth.lockout", object_type=USER_OBJECT,
                  object_id=str(username or "")[:64],
                  detail=f"locked out after repeated failures from {ip_address}",
                  after={"address": str(ip_address or "")})
    logger.warning("login of %r from %s locked out after repeated failures", username, ip_address)


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): the API's error body
    for the API, the login page with a translated notice for people."""
    from django.conf import settings
    from django.http import JsonResponse
    from django.shortcuts import render
    from django.utils.translation import gettext as _

    minutes = settings.AXES_COOLOFF_TIME.total_seconds() // 60 if settings.AXES_COOLOFF_TIME else 0
    if minutes:
        detail = _("Too many failed logins: this account is locked for %(minutes)d minutes "
                   "from this address.") % {"minutes": minutes}
    else:
        detail = _("Too many failed logins: this account is locked until an administrator "
                   "unlocks it.")
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail, "code": "locked_out"}, status=429)
    return render(request, "registration/login.html", {"locked_out": detail}, status=429)


def record_token_issued(request, user) -> None:
    """The API token endpoint does not call ``login()``: its success is audited here."""
    address = client_address(request)
    record_access(Actor.for_user(user), "auth.login", object_type=USER_OBJECT, object_id=user.pk,
                  detail=f"api token issued to {address}", after={"address": address})
    logger.info("api token issued to %s from %s", user.get_username(), address)


def connect() -> None:
    from axes.signals import user_locked_out
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

    user_logged_in.connect(on_logged_in, dispatch_uid="ris.security.logged_in")
    user_logged_out.connect(on_logged_out, dispatch_uid="ris.security.logged_out")
    user_login_failed.connect(on_login_failed, dispatch_uid="ris.security.login_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="ris.security.locked_out")
