"""Authentication and roles: no anonymous access anywhere, each action only for its roles."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache, caches
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from ris.roles import Role
from tests.api.conftest import token_client

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"


def _operations() -> list[tuple[str, str]]:
    """Every operation of the API as (method, concrete path), straight from its schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for path, item in schema["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in item:
            operations.append((method.upper(), concrete))
    return operations


OPERATIONS = _operations()
PROTECTED = [op for op in OPERATIONS if op[1] != TOKEN_URL]


def _error_code(response) -> str:
    """The refusal's code: ``code`` of the REST API's body, the issue code of a FHIR
    OperationOutcome (FHIR R4 3.1.0.4) under /fhir/."""
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        return body["issue"][0]["code"]
    return body["code"]


def test_the_schema_lists_every_endpoint_family():
    paths = {path for _, path in OPERATIONS}
    for family in ("patients", "orders", "steps", "devices", "procedure-types", "audit-events"):
        assert f"/api/v1/{family}/" in paths


@pytest.mark.parametrize(("method", "path"), PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_anonymous_request_is_refused_with_401(anonymous, method, path):
    response = anonymous.generic(method, path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert _error_code(response) in ("not_authenticated", "login")


def test_the_schema_needs_a_login(anonymous):
    assert anonymous.get("/api/schema/").status_code == 401


def test_anonymous_docs_page_redirects_to_the_login_page_and_back(anonymous):
    response = anonymous.get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/api/docs/"


@pytest.mark.parametrize(
    ("method", "path"),
    [op for op in PROTECTED if op[1] != "/api/v1/auth/me/"],
    ids=[f"{m} {p}" for m, p in PROTECTED if p != "/api/v1/auth/me/"],
)
def test_user_without_a_role_is_refused_with_403(api_as, method, path):
    response = api_as().generic(method, path, "{}", content_type="application/json")
    assert response.status_code == 403
    assert _error_code(response) in ("permission_denied", "forbidden")


def test_an_invalid_token_is_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert anonymous.get("/api/v1/patients/").status_code == 401


def test_a_deactivated_users_token_stops_working(make_user):
    user = make_user("leaver", Role.FRONT_DESK)
    client = token_client(user)
    assert client.get("/api/v1/patients/").status_code == 200
    user.is_active = False
    user.save()
    assert client.get("/api/v1/patients/").status_code == 401


def test_a_token_is_issued_for_a_username_and_password(make_user, anonymous):
    cache.clear()
    make_user("scripter", Role.RADIOLOGIST)
    response = anonymous.post(
        TOKEN_URL, {"username": "scripter", "password": "correct horse battery"}, format="json"
    )
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/auth/me/").json() == {
        "username": "scripter",
        "roles": [Role.RADIOLOGIST.value],
    }


def test_a_wrong_password_gets_no_token(make_user, anonymous):
    cache.clear()
    make_user("scripter", Role.RADIOLOGIST)
    response = anonymous.post(
        TOKEN_URL, {"username": "scripter", "password": "guess"}, format="json"
    )
    assert response.status_code == 400
    assert "token" not in response.json()


def test_password_guessing_on_the_token_endpoint_is_throttled(anonymous):
    # One try per username: the lockout per username (tests/api/test_lockout.py) never applies,
    # the rate per client address does, counted in the database cache shared by all processes.
    caches["shared"].clear()
    statuses = [
        anonymous.post(
            TOKEN_URL, {"username": f"x{n}", "password": "y"}, format="json"
        ).status_code
        for n in range(31)
    ]
    assert statuses[:30] == [400] * 30
    assert statuses[30] == 429
    caches["shared"].clear()


def test_a_web_session_reaches_the_api(make_user):
    make_user("deskuser", Role.FRONT_DESK)
    browser = Client()
    assert browser.login(username="deskuser", password="correct horse battery")
    assert browser.get("/api/v1/patients/").status_code == 200


def test_a_session_write_without_csrf_token_is_refused(make_user):
    make_user("deskuser", Role.FRONT_DESK)
    browser = Client(enforce_csrf_checks=True)
    assert browser.login(username="deskuser", password="correct horse battery")
    response = browser.post(
        "/api/v1/patients/",
        {"patient_id": "X1", "name": "Doe^Jane"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
