"""End to end in a real browser against a real ``ris serve``, checked by a real modality (DCMTK).

Headless Debian Chromium (Playwright) does what the front desk does: log in, register a patient
with a Chinese name, order an exam, book it in the calendar, check the patient in, move the exam.
DCMTK ``findscu -W`` then asks the MWL SCP, as the CT would, and must see the name's exact bytes
and the new time.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO

from tests.mwl.dcmtk import findscu, sps
from worklist.demo import load_demo
from worklist.models import CharacterSet, Device, Patient, ScheduledProcedureStep

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]

NAME_BYTES = "Liu^Yang=刘^洋".encode()


@pytest.fixture(autouse=True)
def fast_password_hasher():
    """The server checks the admin's password with the default hashers: keep them here."""


@pytest.fixture
def department():
    """The admin ``ris serve`` would create (a transactional test before may have flushed it)
    and the demo department: stations (CT1 answers in UTF-8), catalogue, patients, today's
    exams, so that the screenshots show a working day."""
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "", "admin-test-password")
    load_demo()
    assert Device.objects.get(ae_title="CT1").character_set == CharacterSet.UTF8


@pytest.fixture
def ris_service(department, new_ris_service):
    """A dedicated ``ris serve`` (web, DICOM with the MWL SCP) over the test database, given
    more time than the shared one to come up: a loaded CI machine can need over a minute."""
    service = new_ris_service("--only", "web,dicom")
    service.wait_healthy(timeout=240)
    return service


@pytest.fixture
def page(browser, ris_service):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where screenshots go: docs/screenshots/ when RIS_SCREENSHOT_DIR says so, else tmp."""
    directory = Path(os.environ.get("RIS_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _worklist_item(ris_service, patient_id: str):
    """The one worklist item CT1 gets for this patient, and its Patient's Name as sent."""
    result = findscu(
        ris_service.dicom_port,
        [
            f"PatientID={patient_id}", "PatientName", "SpecificCharacterSet",
            "AccessionNumber",
            *sps(ScheduledStationAETitle="CT1", ScheduledProcedureStepStartDate="",
                 ScheduledProcedureStepStartTime="", ScheduledProcedureStepStatus=""),
        ],
        calling_ae="CT1",
    )
    assert result.returncode == 0, result.output
    assert len(result.raw) == 1, result.output
    item = dcmread(DicomBytesIO(result.raw[0]), force=True)
    raw_name = item.get_item(0x00100010).value  # undecoded: the bytes on the wire
    return item, raw_name.rstrip(b" ")


def test_front_desk_books_checks_in_and_moves_an_exam_the_modality_sees(
    department, ris_service, page, shots
):
    base = ris_service.base_url
    # The exam is booked for tomorrow: the front desk may not book into the past, and 10:00
    # today is past for most of the day the suite may run.
    today = timezone.localdate() + dt.timedelta(days=1)

    page.goto(f"{base}/")
    assert "/accounts/login/" in page.url
    page.screenshot(path=shots / "login.png")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-test-password")
    with page.expect_navigation():
        page.click("form button.primary")

    # Register the patient with alphabetic and ideographic name groups.
    page.click("text=Patients")
    page.click("text=Register a patient")
    page.fill("#id_patient_id", "E2E-1")
    page.fill("#id_alphabetic_family", "Liu")
    page.fill("#id_alphabetic_given", "Yang")
    page.fill("#id_ideographic_family", "刘")
    page.fill("#id_ideographic_given", "洋")
    page.fill("#id_birth_date", "1980-03-12")
    page.select_option("#id_sex", "M")
    page.screenshot(path=shots / "patient-register.png")
    with page.expect_navigation():
        page.click("button:has-text('Save')")
    assert page.locator("h1").inner_text().startswith("刘 洋 / Liu Yang")
    assert Patient.objects.get(patient_id="E2E-1").person_name.ideographic == "刘^洋"

    # Order a CT head without a slot: it waits on the calendar's list.
    page.click("text=New order")
    page.select_option("#id_procedure_type", label="CTHEAD CT head without contrast")
    page.fill("#id_reason", "headache")
    with page.expect_navigation():
        page.click("button:has-text('Create order')")
    assert "Unscheduled" in page.locator("table.grid").first.inner_text()

    # Book it into a free 10:00 slot of CT1 from the calendar.
    page.goto(f"{base}/calendar/?date={today:%Y-%m-%d}")
    page.click("aside.waiting a.waiting-step:has-text('刘 洋')")
    page.select_option("#id_station", label="CT1")
    page.fill("#id_date", f"{today:%Y-%m-%d}")
    page.fill("#id_time", "10:00")
    with page.expect_navigation():
        page.click("button:has-text('Book')")
    assert "Booked" in page.locator(".messages").inner_text()
    block = page.locator(".cal-col .block:has-text('刘 洋')")
    assert block.inner_text().startswith("10:00")
    page.screenshot(path=shots / "calendar-day.png")

    # Check the patient in from the day list (htmx swaps the row in place).
    page.goto(f"{base}/day/?date={today:%Y-%m-%d}")
    row = page.locator("table.daylist tbody tr:has-text('刘 洋')")
    row.locator("button:has-text('Arrived')").click()
    page.wait_for_selector("table.daylist tbody tr:has-text('刘 洋') .badge.st-arrived")
    page.screenshot(path=shots / "checkin.png")

    item, raw_name = _worklist_item(ris_service, "E2E-1")
    assert item.SpecificCharacterSet == "ISO_IR 192"
    assert raw_name == NAME_BYTES
    assert item.PatientName == "Liu^Yang=刘^洋"
    step_item = item.ScheduledProcedureStepSequence[0]
    assert step_item.ScheduledProcedureStepStartDate == f"{today:%Y%m%d}"
    assert step_item.ScheduledProcedureStepStartTime.startswith("1000")
    assert step_item.ScheduledProcedureStepStatus == "ARRIVED"

    # Move it to 11:30 with the move form (the calendar block links to it).
    page.goto(f"{base}/calendar/?date={today:%Y-%m-%d}")
    with page.expect_navigation():
        page.locator(".cal-col .block:has-text('刘 洋')").click()
    page.fill("#id_time", "11:30")
    with page.expect_navigation():
        page.click("button:has-text('Move')")
    assert "Moved to" in page.locator(".messages").inner_text()
    step = ScheduledProcedureStep.objects.get(
        requested_procedure__order__patient__patient_id="E2E-1"
    )
    assert timezone.localtime(step.scheduled_start).time() == dt.time(11, 30)

    moved = _worklist_item(ris_service, "E2E-1")[0].ScheduledProcedureStepSequence[0]
    assert moved.ScheduledProcedureStepStartTime.startswith("1130")
    assert moved.ScheduledProcedureStepStatus == "SCHEDULED"  # a move undoes the check-in

    # Drag and drop onto a free 12:00 slot of CT2 (in view) posts the same move form.
    ct2 = Device.objects.get(ae_title="CT2")
    page.goto(f"{base}/calendar/?date={today:%Y-%m-%d}")
    with page.expect_navigation():
        page.drag_and_drop(
            ".cal-col .block:has-text('刘 洋')",
            f".cal-col[data-station='{ct2.pk}'] a.slot[data-time='12:00']",
        )
    step.refresh_from_db()
    assert step.station == ct2
    assert timezone.localtime(step.scheduled_start).time() == dt.time(12, 0)

    # The other main pages, for the screenshots in the README.
    page.goto(f"{base}/orders/{step.requested_procedure.order_id}/")
    page.screenshot(path=shots / "order-detail.png", full_page=True)
    page.goto(f"{base}/")
    page.screenshot(path=shots / "dashboard.png")
    page.goto(f"{base}/board/CT/")
    page.screenshot(path=shots / "worklist-board.png")
    page.goto(f"{base}/patients/?q=刘洋")
    assert "E2E-1" in page.content()
    page.screenshot(path=shots / "patient-search.png")
    with page.expect_navigation():
        page.select_option("select[name=language]", "zh-hans")
    page.goto(f"{base}/calendar/?date={today:%Y-%m-%d}")
    assert "预约日历" in page.content()
    page.screenshot(path=shots / "calendar-day-zh-hans.png")


def test_front_desk_registers_a_hanzi_only_name_edits_the_suggested_pinyin_and_finds_it(
    department, ris_service, page
):
    base = ris_service.base_url
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-test-password")
    with page.expect_navigation():
        page.click("form button.primary")
    page.goto(f"{base}/patients/new/")
    page.fill("#id_patient_id", "E2E-ZH")
    page.fill("#id_ideographic_family", "王")
    page.fill("#id_ideographic_given", "小东")
    page.locator("#id_ideographic_given").blur()  # htmx asks for the suggestion on change
    page.wait_for_function(
        "document.querySelector('#id_alphabetic_given').value === 'XiaoDong'"
    )
    assert page.input_value("#id_alphabetic_family") == "Wang"
    page.fill("#id_alphabetic_given", "Xiaotung")  # the patient writes it so
    with page.expect_navigation():
        page.click("button:has-text('Save')")
    patient = Patient.objects.get(patient_id="E2E-ZH")
    assert str(patient.person_name) == "Wang^Xiaotung=王^小东"
    assert not patient.name_alphabetic_derived
    page.goto(f"{base}/patients/?q=wxd")
    assert "E2E-ZH" in page.content()
