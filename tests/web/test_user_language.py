"""The UI language is a per-user setting stored on the account; the department default
(RIS_LANGUAGE) applies to users who chose none, and to the login page."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from ris.models import UserPreference
from ris.roles import Role
from tests.web.conftest import PASSWORD, make_user


def _login(username: str) -> Client:
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def _dashboard(client: Client) -> str:
    return client.get(reverse("web:dashboard")).content.decode()


def test_the_choice_is_stored_on_the_account_and_follows_the_user_to_another_browser(db):
    make_user("li.na", Role.FRONT_DESK)
    first = _login("li.na")
    first.post(reverse("web:set_language"), {"language": "zh-hans", "next": "/"})
    assert UserPreference.objects.get(user__username="li.na").language == "zh-hans"
    elsewhere = _login("li.na")  # another workstation: no language cookie
    assert "django_language" not in elsewhere.cookies
    page = _dashboard(elsewhere)
    assert '<html lang="zh-hans">' in page and "工作列表看板" in page


def test_the_next_user_of_a_shared_workstation_gets_their_own_language(db):
    make_user("zhou.min", Role.FRONT_DESK)
    make_user("visiting", Role.RADIOLOGIST)
    shared = _login("zhou.min")
    shared.post(reverse("web:set_language"), {"language": "zh-hans"})
    english = _login("visiting")
    english.post(reverse("web:set_language"), {"language": "en"})
    shared.post(reverse("logout"))
    response = shared.post(reverse("login"), {"username": "visiting", "password": PASSWORD})
    assert response.status_code == 302
    page = _dashboard(shared)  # the browser still has zh-hans in its cookie
    assert '<html lang="en">' in page and "Worklist board" in page


def test_a_user_without_a_choice_gets_the_department_default(db, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    make_user("new.clerk", Role.FRONT_DESK)
    page = _dashboard(_login("new.clerk"))
    assert '<html lang="zh-hans">' in page
    assert not UserPreference.objects.filter(user__username="new.clerk").exists()


def test_the_login_page_switch_sets_only_the_browser_cookie(client, db):
    response = client.post(reverse("web:set_language"), {"language": "zh-hans", "next": "/"})
    assert response.status_code == 302
    assert client.cookies["django_language"].value == "zh-hans"
    assert "登录" in client.get(reverse("login")).content.decode()
    assert not UserPreference.objects.exists()


def test_an_unsupported_language_falls_back_to_the_department_default(db):
    make_user("typo", Role.FRONT_DESK)
    client = _login("typo")
    client.post(reverse("web:set_language"), {"language": "klingon"})
    assert UserPreference.objects.get(user__username="typo").language == ""
    assert '<html lang="en">' in _dashboard(client)
