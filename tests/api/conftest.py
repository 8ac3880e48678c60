"""API test fixtures: a user per role, each with a real DRF token, and an API client for it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ris.roles import Role


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 costs ~0.3 s a password by design; these tests check roles, not hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(username: str, *roles: Role, **fields) -> User:
        user = User.objects.create_user(username, password="correct horse battery", **fields)
        for role in roles:
            user.groups.add(Group.objects.get(name=role.value))
        return user

    return make


def token_client(user: User) -> APIClient:
    """A client that authenticates the way an integrator's script does: a token header."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_as(make_user) -> Callable[..., APIClient]:
    """``api_as(Role.FRONT_DESK)``: a token client for a fresh user holding those roles."""
    count = 0

    def make(*roles: Role) -> APIClient:
        nonlocal count
        count += 1
        names = "-".join(role.value.replace(" ", "_") for role in roles) or "norole"
        return token_client(make_user(f"{names}-{count}", *roles))

    return make


@pytest.fixture
def desk(api_as) -> APIClient:
    return api_as(Role.FRONT_DESK)


@pytest.fixture
def technologist(api_as) -> APIClient:
    return api_as(Role.TECHNOLOGIST)


@pytest.fixture
def radiologist(api_as) -> APIClient:
    return api_as(Role.RADIOLOGIST)


@pytest.fixture
def admin(api_as) -> APIClient:
    return api_as(Role.ADMIN)


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()
