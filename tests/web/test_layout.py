"""The pages fit a 1280 px desk screen and a tablet: nothing runs off the side of the page.

Headless Debian Chromium (Playwright) loads each main page of the demo department at a tablet's
portrait and landscape sizes and at 1280x800. Wide content (the calendar's station columns, long
tables) may scroll inside its own box; the page itself must not scroll sideways, and every link
of the main navigation must be on screen.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from worklist.demo import load_demo
from worklist.models import Order, Patient

pytestmark = pytest.mark.django_db(transaction=True)

VIEWPORTS = {"tablet portrait": (768, 1024), "tablet landscape": (1024, 768), "desk": (1280, 800)}
PAGES = [
    "/",
    "/patients/?q=a",
    "/patients/new/",
    "/patients/{patient}/",
    "/orders/new/",
    "/orders/{order}/",
    "/calendar/",
    "/calendar/?view=week",
    "/day/",
    "/board/",
    "/catalog/import/",
    "/mpps/exceptions/",
    "/hl7/messages/",
    "/outbound/",
    "/statistics/",
    "/schedule/exceptions/",
    "/day/print/",
]

#: Elements wider than the page (what to look at when the test fails).
_OVERFLOW = """() => {
  const doc = document.documentElement;
  const wide = [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > doc.clientWidth + 1)
    .filter(e => !e.parentElement.closest('[data-overflow-ok]'))
    .slice(0, 3).map(e => e.tagName.toLowerCase() + '.' + [...e.classList].join('.'));
  return {scroll: doc.scrollWidth, client: doc.clientWidth, wide};
}"""


@pytest.fixture
def session(browser, live_server):
    """The demo department and an admin's session cookie (admins see every navigation link)."""
    load_demo()
    admin = User.objects.create_superuser("layout-admin", "", "layout-test-password")
    client = Client()
    client.force_login(admin)
    ids = {"patient": Patient.objects.first().pk, "order": Order.objects.first().pk}
    return client.cookies["sessionid"].value, ids


def _page(browser, live_server, session, width: int, height: int):
    cookie, _ = session
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(15_000)
    context.add_cookies([{"name": "sessionid", "value": cookie, "url": live_server.url}])
    return context, context.new_page()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_no_page_scrolls_sideways(browser, live_server, session, viewport):
    context, page = _page(browser, live_server, session, *VIEWPORTS[viewport])
    overflowing = {}
    try:
        for path in PAGES:
            page.goto(live_server.url + path.format(**session[1]))
            assert "/accounts/login/" not in page.url
            measured = page.evaluate(_OVERFLOW)
            if measured["scroll"] > measured["client"]:
                overflowing[path] = measured
    finally:
        context.close()
    assert overflowing == {}


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=list(VIEWPORTS))
def test_every_main_navigation_link_is_on_screen(browser, live_server, session, viewport):
    width, height = VIEWPORTS[viewport]
    context, page = _page(browser, live_server, session, width, height)
    try:
        page.goto(live_server.url + "/calendar/")
        links = page.locator("nav.mainnav a")
        boxes = [links.nth(i).bounding_box() for i in range(links.count())]
        names = links.all_inner_texts()
    finally:
        context.close()
    assert "Calendar" in names and "Catalogue" in names
    off_screen = [
        name for name, box in zip(names, boxes, strict=True)
        if box is None or box["x"] < 0 or box["x"] + box["width"] > width or box["y"] > height
    ]
    assert off_screen == []
