"""``ris serve`` as an operator runs it: every listener up, DCMTK can echo it, SIGTERM is clean."""

import os
import signal
import subprocess
import time

import pytest

from tests.mwl.dcmtk import tool

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]


def test_echoscu_succeeds_against_the_ris_ae(ris_service):
    result = subprocess.run(
        [tool("echoscu"), "-aec", "RIS", "127.0.0.1", str(ris_service.dicom_port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_healthz_reports_every_listener_up(ris_service):
    # The heartbeat row may have just been flushed with the previous test's data: wait for a beat.
    report = ris_service.wait_healthy(timeout=15)
    for listener in ("database", "dicom", "mllp", "scheduler", "web"):
        assert report[listener]["ok"], (listener, report)


def test_serve_prints_one_line_per_listener(ris_service):
    log = ris_service.log()
    assert f"RIS@127.0.0.1:{ris_service.dicom_port}" in log
    assert f"mllp://127.0.0.1:{ris_service.mllp_port}" in log
    assert f"http://127.0.0.1:{ris_service.http_port}/" in log
    # The session's server leads the scheduler unless another test's server took the lead first.
    assert "scheduler leader" in log or "scheduler standby" in log


def test_sigterm_stops_everything_with_exit_0_within_10_seconds(new_ris_service):
    service = new_ris_service()
    service.wait_healthy()
    started = time.monotonic()
    code = service.stop(signal.SIGTERM)
    assert code == 0
    assert time.monotonic() - started < 10


def test_a_dead_listener_is_restarted(new_ris_service):
    service = new_ris_service()
    service.wait_healthy()
    dicom_children = subprocess.run(
        ["pgrep", "-f", "-P", str(service.process.pid), "ris.cli dicom"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert len(dicom_children) == 1
    os.kill(int(dicom_children[0]), signal.SIGKILL)
    time.sleep(1)
    report = service.wait_healthy(timeout=30)
    assert report["dicom"]["ok"]
    assert "dicom exited with -9; restarting" in service.log()


def test_a_second_scheduler_on_the_same_database_stands_by(new_ris_service, ris_service):
    # ris_service already leads the scheduler of the test database.
    service = new_ris_service("--only", "scheduler")
    deadline = time.monotonic() + 30
    while "scheduler standby" not in service.log() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert "scheduler standby" in service.log()
    assert "scheduler leader" not in service.log()


def test_first_run_creates_admin_with_the_password_from_environment(new_ris_service):
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User

    User.objects.filter(is_superuser=True).delete()
    service = new_ris_service()
    service.wait_healthy()
    assert "created with RIS_ADMIN_PASSWORD" in service.log()
    assert authenticate(username="admin", password="admin-test-password") is not None


def test_first_run_without_password_prints_a_one_time_password(new_ris_service):
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User

    User.objects.filter(is_superuser=True).delete()
    service = new_ris_service(RIS_ADMIN_PASSWORD="")
    service.wait_healthy()
    line = next(line for line in service.log().splitlines() if "one-time password" in line)
    password = line.split("one-time password: ")[1].split()[0]
    assert authenticate(username="admin", password=password) is not None


def _healthz(service, token: str | None = None) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{service.base_url}/healthz")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_anonymous_healthz_shows_status_only_and_the_token_shows_details(new_ris_service):
    service = new_ris_service(RIS_HEALTH_TOKEN="s3cret-health", RIS_DICOM_REQUIRE_KNOWN_AE="1")
    # With the AE allow-list on (and no Device at all) the health check's own echo is admitted.
    service.wait_healthy(timeout=60)
    status, anonymous = _healthz(service)
    assert status == 200
    assert set(anonymous) == {
        "ok", "status", "database", "dicom", "mllp", "scheduler", "events", "web", "outbound"
    }
    assert anonymous["status"] == "ok"  # ok / degraded / down: a word, no detail
    assert all(
        value == {"ok": True} for key, value in anonymous.items() if key not in ("ok", "status")
    )
    assert str(service.dicom_port) not in str(anonymous)
    assert _healthz(service, token="wrong")[1] == anonymous
    status, detailed = _healthz(service, token="s3cret-health")
    assert status == 200
    assert detailed["dicom"]["address"].endswith(f":{service.dicom_port}")
    assert "detail" in detailed["scheduler"]  # the leader's PID and host


def _dicom_children(service) -> list[int]:
    found = subprocess.run(["pgrep", "-f", "-P", str(service.process.pid), "ris.cli dicom"],
                           capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_dicom_processes_share_the_port_and_each_answers(new_ris_service):
    """RIS_DICOM_PROCESSES=2: two listeners on one port (SO_REUSEPORT); with one of them killed
    the other still answers, and the supervisor restarts the dead one."""
    service = new_ris_service("--only", "dicom", RIS_DICOM_PROCESSES="2")
    deadline = time.monotonic() + 60
    while service.log().count(f"RIS@127.0.0.1:{service.dicom_port}") < 2:
        assert time.monotonic() < deadline, service.log()
        time.sleep(0.2)
    children = _dicom_children(service)
    assert len(children) == 2
    os.kill(children[0], signal.SIGKILL)
    for _ in range(10):  # the kernel sends each new connection to a live listener
        echo = subprocess.run([tool("echoscu"), "-aec", "RIS", "127.0.0.1",
                               str(service.dicom_port)], capture_output=True, text=True,
                              timeout=30)
        assert echo.returncode == 0, echo.stderr
    while len(_dicom_children(service)) < 2 or "dicom exited with -9" not in service.log():
        assert time.monotonic() < deadline + 30, service.log()
        time.sleep(0.2)
