"""Small things a new front desk notices first: the favicon and the way to the API docs."""

from __future__ import annotations

from django.urls import reverse


def test_pages_link_a_favicon_and_favicon_ico_leads_to_it(desk, client):
    page = desk.get(reverse("web:dashboard")).content.decode()
    assert 'rel="icon"' in page and "favicon.svg" in page
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("ris/favicon.svg")


def test_the_navigation_links_the_api_docs(desk):
    assert reverse("api:docs") in desk.get(reverse("web:dashboard")).content.decode()
