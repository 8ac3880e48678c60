"""DICOMweb fixtures: API accounts that stand for devices, and token clients for them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ris.roles import Role
from worklist.models import Device


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def device_account(device: Device, *roles: Role) -> tuple[User, str]:
    """The API account of ``device`` (``Device.api_user``) and its token key."""
    user = User.objects.create_user(f"dev-{device.ae_title.lower()}", password="x" * 12)
    for role in roles:
        user.groups.add(Group.objects.get(name=role.value))
    device.api_user = user
    device.save(update_fields=["api_user"])
    return user, Token.objects.create(user=user).key


@pytest.fixture
def client_for(db) -> Callable[..., APIClient]:
    """``client_for(device)``: a token client authenticated as the device's API account."""

    def make(device: Device, *roles: Role) -> APIClient:
        _, key = device_account(device, *roles)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return make
