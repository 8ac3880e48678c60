"""The OpenAPI schema and its docs pages, served from the installed package without a CDN."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(make_user):
    from ris.roles import Role

    make_user("reader", Role.RADIOLOGIST)
    client = Client()
    client.login(username="reader", password="correct horse battery")
    return client


def test_the_schema_is_valid_openapi_3(radiologist):
    response = radiologist.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate(schema)


def test_every_operation_documents_its_error_responses(radiologist):
    schema = radiologist.get("/api/schema/?format=json").json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path == "/api/v1/auth/token/":
                continue
            assert {"400", "401", "403"} <= set(operation["responses"]), (method, path)
            if method != "get":
                assert "409" in operation["responses"], (method, path)


def test_the_docs_page_loads_everything_from_this_server(browser):
    response = browser.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert all(not src.startswith(("http:", "https:", "//")) for src in sources), sources
    assert any("drf_spectacular_sidecar" in src for src in sources)


def test_the_swagger_ui_bundle_is_served_by_ris(browser):
    html = browser.get("/api/docs/").content.decode()
    bundle = re.search(r'src="([^"]*swagger-ui-bundle\.js)"', html).group(1)
    response = browser.get(bundle)
    assert response.status_code == 200
    assert b"SwaggerUIBundle" in b"".join(response.streaming_content)
