"""Fixtures of the web UI tests: a logged-in client per role, stations and a catalogue."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from ris.roles import Role, ensure_groups
from tests.factories import DeviceFactory, ProcedureTypeFactory
from worklist.models import Modality

PASSWORD = "web-test-password"


def make_user(username: str, *roles: Role) -> User:
    ensure_groups()
    user = User.objects.create_user(username, password=PASSWORD)
    user.groups.set(Group.objects.filter(name__in=[role.value for role in roles]))
    return user


@pytest.fixture
def client_as(db):
    """``client_as(Role.FRONT_DESK)``: a test client logged in as a user holding that role."""
    made: dict[str, Client] = {}

    def login(*roles: Role) -> Client:
        key = ",".join(sorted(r.value for r in roles)) or "norole"
        if key not in made:
            user = make_user(key.replace(" ", "_").replace(",", "+"), *roles)
            client = Client()
            client.force_login(user)
            made[key] = client
        return made[key]

    return login


@pytest.fixture
def desk(client_as) -> Client:
    return client_as(Role.FRONT_DESK)


@pytest.fixture
def ct1(db):
    return DeviceFactory(
        ae_title="CT1", modality=Modality.CT, opens_at=dt.time(7), closes_at=dt.time(19)
    )


@pytest.fixture
def ct2(db):
    return DeviceFactory(ae_title="CT2", modality=Modality.CT)


@pytest.fixture
def ct_head(db, ct1):
    ptype = ProcedureTypeFactory(
        code_value="CTHEAD", code_meaning="CT head", modality=Modality.CT,
        default_duration_minutes=20,
    )
    ptype.stations.add(ct1)
    return ptype


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # The default PBKDF2 costs ~0.3 s per user on this machine; these tests are not about hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


CHROMIUM = "/usr/bin/chromium"
#: No downloads, no background traffic: the hospital network is offline and so is CI.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """A headless Debian Chromium driven by Playwright (no browser download).

    Playwright's sync API keeps an asyncio loop running in this thread while the browser lives,
    and Django refuses ORM calls while a loop runs; the tests' own ORM calls (and the flush
    after a transactional test) are synchronous and safe, so they are allowed for as long as the
    browser lives and no longer: module scope keeps that window to the end-to-end module.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
