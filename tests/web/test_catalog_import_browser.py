"""The catalogue import in a real browser: one progress bar (the latest), then the result."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from worklist.models import ProcedureType

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 250


def test_import_shows_one_progress_bar_at_the_end_and_the_result(browser, live_server, tmp_path):
    admin = User.objects.create_superuser("import-admin", "", "import-test-password")
    client = Client()
    client.force_login(admin)
    csv_file = tmp_path / "catalog.csv"
    csv_file.write_text(
        "code,scheme,meaning,modality,duration_minutes,stations\n"
        + "".join(f"CT{n:04d},L,CT exam {n},CT,15,CT1\n" for n in range(ROWS - 1))
        + "BAD,L,Broken,XX,15,CT1\n"
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    context.set_default_timeout(30_000)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/catalog/import/")
        page.set_input_files("#id_file", str(csv_file))
        with page.expect_navigation():
            page.click("button:has-text('Import')")
        page.wait_for_selector(".report")
        visible = page.locator(".import-progress .tick:visible")
        assert visible.count() == 1
        assert visible.inner_text().strip() == f"{ROWS} of {ROWS} rows"
        assert page.locator(".import-progress progress:visible").get_attribute("value") == str(ROWS)
        assert "modality 'XX'" in page.locator(".report table.errors").inner_text()
    finally:
        context.close()
    assert ProcedureType.objects.count() == ROWS - 1
