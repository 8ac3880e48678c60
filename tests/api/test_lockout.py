"""Password guessing: one limit, kept in the database, for the web login form and the API token
endpoint (django-axes), audited; a reset by the administrator's command lifts it."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from worklist.models import AuditEvent

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"
LOGIN_URL = "/accounts/login/"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fresh_limits(settings):
    settings.AXES_FAILURE_LIMIT = 5
    caches["shared"].clear()
    yield
    caches["shared"].clear()


def _web_login(password: str, client: Client | None = None):
    return (client or Client()).post(LOGIN_URL, {"username": "desk", "password": password})


def _token(password: str):
    return APIClient().post(TOKEN_URL, {"username": "desk", "password": password}, format="json")


def test_the_web_login_is_locked_after_the_limit_even_for_the_right_password(make_user):
    make_user("desk")
    assert [_web_login("guess").status_code for _ in range(5)][:4] == [200] * 4  # form again
    response = _web_login(PASSWORD)
    assert response.status_code == 429
    assert "_auth_user_id" not in Client().session


def test_failures_on_the_web_form_and_the_api_count_against_one_limit(make_user):
    make_user("desk")
    for _ in range(3):
        _web_login("guess")
    for _ in range(2):
        _token("guess")
    assert _token(PASSWORD).status_code == 429  # locked: the API sees the web form's failures
    assert _web_login(PASSWORD).status_code == 429


def test_a_success_before_the_limit_resets_the_count(make_user):
    make_user("desk")
    for _ in range(4):
        _web_login("guess")
    assert _web_login(PASSWORD).status_code == 302  # logged in, redirected
    for _ in range(4):
        _web_login("guess")
    assert _web_login(PASSWORD).status_code == 302


def test_the_reset_command_lifts_a_lockout(make_user):
    make_user("desk")
    for _ in range(5):
        _token("guess")
    assert _token(PASSWORD).status_code == 429
    call_command("axes_reset_username", "desk")
    assert _token(PASSWORD).status_code == 200


def test_logins_failures_lockouts_and_logouts_are_audited(make_user):
    user = make_user("desk")
    client = Client()
    assert _web_login(PASSWORD, client).status_code == 302
    client.post("/accounts/logout/")
    assert _token(PASSWORD).status_code == 200
    for _ in range(5):
        _web_login("guess")
    actions = list(
        AuditEvent.objects.filter(object_type="auth.User").order_by("id")
        .values_list("action", "object_id")
    )
    assert actions[:3] == [
        ("auth.login", str(user.pk)), ("auth.logout", str(user.pk)), ("auth.login", str(user.pk))
    ]
    assert sorted(actions[3:]) == sorted([("auth.login_failed", "desk")] * 5
                                         + [("auth.lockout", "desk")])
    failed = AuditEvent.objects.filter(action="auth.login_failed").first()
    assert "127.0.0.1" in failed.detail


@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_across_the_gunicorn_workers_of_a_real_ris(ris_service, make_user):
    import json
    import urllib.error
    import urllib.request

    make_user("desk")

    def token(password: str) -> int:
        body = json.dumps({"username": "desk", "password": password}).encode()
        request = urllib.request.Request(f"{ris_service.base_url}{TOKEN_URL}", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    # ris_service runs the default limit (10) on two gunicorn workers: each worker alone would
    # have seen about half of the failures.
    assert [token("guess") for _ in range(10)] == [400] * 9 + [429]  # the 10th locks
    assert token(PASSWORD) == 429


def test_a_locked_out_api_client_gets_the_api_error_body(make_user):
    make_user("desk")
    for _ in range(5):
        _token("guess")
    response = _token(PASSWORD)
    assert response.status_code == 429
    assert response.json()["code"] == "locked_out"
    assert "15 minutes" in response.json()["detail"]


def test_the_locked_out_login_page_is_in_the_users_language(make_user):
    make_user("desk")
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    for _ in range(5):
        _web_login("guess", client)
    response = _web_login(PASSWORD, client)
    assert response.status_code == 429
    assert "登录失败次数过多" in response.content.decode()
