"""Shared fixtures: a real ``ris serve`` on free ports over the test database."""

from __future__ import annotations

import os

import pytest
from django.conf import settings

from tests.pki import make_ca, make_certificate
from tests.service import RisService, test_database_url


def pytest_collection_modifyitems(config, items):
    # DCMTK is installed by the test command (scripts/test); missing it is an error, not a skip.
    needs_dcmtk = any(item.get_closest_marker("dcmtk") for item in items)
    if needs_dcmtk and not os.path.exists("/usr/bin/findscu"):
        raise pytest.UsageError("DCMTK (findscu, echoscu) is not installed: run scripts/test")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database of this run's own, so that parallel pytest runs on one machine (two
    developers, SQLite and PostgreSQL legs) never drop each other's database."""
    test_settings = settings.DATABASES["default"].setdefault("TEST", {})
    suffix = os.getpid()
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        test_settings["NAME"] = str(settings.DATA_DIR / f"test-ris-{suffix}.sqlite3")
    else:
        base = test_settings.get("NAME") or f"test_{settings.DATABASES['default']['NAME']}"
        test_settings["NAME"] = f"{base}_{suffix}"


@pytest.fixture(scope="session", autouse=True)
def _no_session_left_on_the_test_database(django_db_setup, django_db_blocker):
    """At the end of the run, close what still holds the PostgreSQL test database (the kept
    connections of in-process worklist threads, a server a failed test left running), so that
    pytest-django can drop it instead of leaving one database per run on the server."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(scope="session", autouse=True)
def forwarding_pki(tmp_path_factory):
    """One PKI per test session for forwarding over TLS. Every ``ris serve`` of the session
    presents ris's client certificate of it and trusts its CA, because whichever server leads
    the scheduler sends every test's images (tests/forwarding/test_tls.py)."""
    directory = tmp_path_factory.mktemp("forward-pki")
    make_ca(directory)
    make_certificate(directory, "server", "/CN=localhost")  # ris's TLS port and the PACS
    make_certificate(directory, "ris", "/CN=RIS/O=Radiology")
    make_certificate(directory, "modality", "/CN=CT01/O=Radiology")
    RisService.pacs_tls_env = {
        "RIS_PACS_TLS_CA": str(directory / "ca.crt"),
        "RIS_PACS_TLS_CERT": str(directory / "ris.crt"),
        "RIS_PACS_TLS_KEY": str(directory / "ris.key"),
    }
    return directory


@pytest.fixture(scope="session", autouse=True)
def _shared_spool(tmp_path_factory):
    RisService.shared_spool = tmp_path_factory.mktemp("shared-spool")


@pytest.fixture(scope="session")
def ris_service(django_db_setup, django_db_blocker, tmp_path_factory):
    """One ``ris serve`` for the whole session, serving the pytest test database.

    Tests that use it must be ``django_db(transaction=True)`` so their rows are committed and
    visible to the server process.
    """
    with django_db_blocker.unblock():
        url = test_database_url()
    service = RisService(data_dir=tmp_path_factory.mktemp("ris-serve"), database_url=url)
    service.start()
    # Generous: on a shared 2-core machine under load, Django's start alone took over 60 s.
    service.wait_healthy(timeout=240)
    yield service
    service.stop(timeout=60)


@pytest.fixture
def new_ris_service(django_db_setup, django_db_blocker, tmp_path):
    """A factory for a dedicated ``ris serve`` (for tests that kill or reconfigure it)."""
    started: list[RisService] = []
    with django_db_blocker.unblock():
        url = test_database_url()

    def start(*args: str, **extra_env: str) -> RisService:
        service = RisService(
            data_dir=tmp_path / f"ris-{len(started)}", database_url=url, extra_env=extra_env
        )
        started.append(service.start(*args))
        return service

    yield start
    for service in started:
        try:
            service.stop()
        except Exception:  # noqa: BLE001 - best effort cleanup of a test's own server
            if service.process is not None:
                service.process.kill()
