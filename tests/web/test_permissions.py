"""Every page: anonymous users go to the login page, users without the role get 403."""

from __future__ import annotations

import pytest
from django.urls import reverse

from ris.roles import Role
from tests.factories import PatientFactory, first_step, make_order
from tests.web.conftest import make_user

ANY = tuple(Role)
DESK = (Role.FRONT_DESK, Role.ADMIN)
CHECK_IN = (Role.FRONT_DESK, Role.TECHNOLOGIST, Role.ADMIN)
ADMIN = (Role.ADMIN,)

#: (url name, which object's pk it takes, method, roles allowed)
PAGES = [
    ("web:dashboard", None, "get", ANY),
    ("web:patient_list", None, "get", ANY),
    ("web:patient_detail", "patient", "get", ANY),
    ("web:patient_create", None, "get", DESK),
    ("web:patient_edit", "patient", "get", DESK),
    ("web:order_create", None, "get", DESK),
    ("web:order_detail", "order", "get", ANY),
    ("web:order_edit", "order", "get", DESK),
    ("web:order_cancel", "order", "get", DESK),
    ("web:order_cancel_undo", "order", "post", DESK),
    ("web:calendar", None, "get", ANY),
    ("web:book", None, "get", DESK),
    ("web:move", "step", "get", DESK),
    ("web:checkin", "step", "post", CHECK_IN),
    ("web:day_list", None, "get", ANY),
    ("web:board", None, "get", ANY),
    ("web:catalog_import", None, "get", ADMIN),
]


@pytest.fixture
def objects(db, ct1, ct_head):
    from tests.factories import at

    order = make_order(patient=PatientFactory(), procedure_type=ct_head, station=ct1,
                       start=at(9))
    return {"patient": order.patient, "order": order, "step": first_step(order)}


def _url(name: str, key: str | None, objects: dict) -> str:
    return reverse(name, kwargs={"pk": objects[key].pk}) if key else reverse(name)


@pytest.mark.parametrize(("name", "key", "method", "roles"), PAGES, ids=[p[0] for p in PAGES])
def test_anonymous_user_is_sent_to_the_login_page(client, objects, name, key, method, roles):
    url = _url(name, key, objects)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(("name", "key", "method", "roles"), PAGES, ids=[p[0] for p in PAGES])
def test_user_without_the_role_gets_403(client_as, objects, name, key, method, roles):
    refused = [role for role in Role if role not in roles] + [None]
    for role in refused:
        client = client_as(role) if role else client_as()
        response = getattr(client, method)(_url(name, key, objects), {"action": "arrived"})
        assert response.status_code == 403, (name, role)


@pytest.mark.parametrize(("name", "key", "method", "roles"), PAGES, ids=[p[0] for p in PAGES])
def test_user_with_the_role_may_open_the_page(client_as, objects, name, key, method, roles):
    for role in roles:
        response = getattr(client_as(role), method)(
            _url(name, key, objects), {"action": "arrived"} if method == "post" else {}
        )
        assert response.status_code in (200, 302), (name, role, response.status_code)


def test_superuser_holds_every_role(client, objects):
    admin = make_user("root")
    admin.is_superuser = True
    admin.save()
    client.force_login(admin)
    assert client.get(reverse("web:catalog_import")).status_code == 200
    assert client.get(reverse("web:patient_create")).status_code == 200


def test_login_page_is_reachable_without_login(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_login_with_the_right_password_opens_the_dashboard(client, db):
    make_user("desk1", Role.FRONT_DESK)
    response = client.post(
        reverse("login"), {"username": "desk1", "password": "web-test-password"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert response.status_code == 200
    assert response.context["user"].username == "desk1"


def test_logout_ends_the_session(desk):
    response = desk.post(reverse("logout"))
    assert response.status_code in (200, 302)
    assert desk.get(reverse("web:dashboard")).status_code == 302
