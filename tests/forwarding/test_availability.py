"""Study availability: ris learns from the PACS (C-FIND) that a step's images arrived there."""

from __future__ import annotations

import subprocess

import pytest

from mpps.forwarding.models import PacsDestination, StepImages
from tests.factories import DeviceFactory, first_step, make_order
from tests.forwarding.conftest import wait_for
from tests.forwarding.instances import ct_study, write_files
from tests.mwl.dcmtk import tool
from worklist import services
from worklist.audit import Actor
from worklist.models import StepStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]


def test_study_sent_straight_to_the_pacs_by_storescu_marks_the_step_images_at_pacs(
    gateway, pacs, tmp_path
):
    PacsDestination.objects.create(
        name="orthanc",
        ae_title=pacs.ae_title,
        host="127.0.0.1",
        port=pacs.dicom_port,
        send_mpps=False,
        send_images=False,
        query_availability=True,
    )
    step = first_step(make_order(station=DeviceFactory(ae_title="CT01")))
    services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.system("test"))
    files = write_files(
        ct_study(3, study_uid=step.requested_procedure.study_instance_uid), tmp_path / "study"
    )

    # The modality sends to the PACS itself: ris sees no image of it.
    subprocess.run(
        [tool("storescu"), "-aec", pacs.ae_title, "127.0.0.1", str(pacs.dicom_port),
         *map(str, files)],
        check=True,
        capture_output=True,
        timeout=30,
    )

    # A started step is asked about on every run, so the counts follow the PACS as it fills.
    images = wait_for(
        lambda: StepImages.objects.filter(step=step, pacs_instances=3).first(),
        what="the step marked images at PACS with all 3 instances",
        service=gateway,
    )
    assert images.pacs_confirmed_at is not None
    assert images.pacs_series == 1
    assert images.pacs_destination == "orthanc"
    assert images.received_instances == 0  # none came through the gateway


def test_step_whose_study_is_not_at_the_pacs_is_not_marked(gateway, pacs):
    PacsDestination.objects.create(
        name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port
    )
    step = first_step(make_order(station=DeviceFactory(ae_title="CT01")))
    services.step_transition(step=step, to=StepStatus.STARTED, actor=Actor.system("test"))

    images = wait_for(
        lambda: StepImages.objects.filter(step=step, pacs_checked_at__isnull=False).first(),
        what="the PACS asked about the step",
        service=gateway,
    )
    assert images.pacs_confirmed_at is None
    assert images.pacs_instances is None


def test_a_study_at_orthanc_that_matches_no_order_is_found_as_an_exception(pacs, tmp_path):
    from mpps.exceptions import ExceptionFilter, exceptions
    from mpps.forwarding.availability import find_orphan_studies

    destination = PacsDestination.objects.create(
        name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
        send_mpps=False, send_images=False, query_availability=True,
    )
    step = first_step(make_order(station=DeviceFactory(ae_title="CT01")))
    ours = ct_study(1, study_uid=step.requested_procedure.study_instance_uid)
    stray = ct_study(2, patient_id="WALK-IN-3", accession="TYPO-1")
    files = write_files(ours + stray, tmp_path / "studies")
    subprocess.run(
        [tool("storescu"), "-aec", pacs.ae_title, "127.0.0.1", str(pacs.dicom_port),
         *map(str, files)],
        check=True, capture_output=True, timeout=30,
    )

    assert find_orphan_studies(destination) == 1

    [row] = exceptions(ExceptionFilter(kind="pacs"))
    assert (row.patient_id, row.accession_number, row.count, row.modality) == (
        "WALK-IN-3", "TYPO-1", 2, "CT"
    )
