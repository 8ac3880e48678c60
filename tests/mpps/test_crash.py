"""Crash safety of MPPS: the whole ``ris serve`` tree killed with SIGKILL in the middle of a run of
exams, restarted, and the modality going on as modalities do (a request without an answer is
sent again, with the same SOP Instance UID). At the end: exactly one PPS per exam, all
COMPLETED, every step COMPLETED. Real peer: the pynetdicom modality of tests/mpps."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from django.db import connection
from pydicom.uid import generate_uid

from mpps.models import PerformedProcedureStep
from tests.factories import DeviceFactory, first_step, make_order
from tests.hl7.conftest import process_tree
from tests.mpps.modality import Modality, series_item
from tests.mwl.test_settings import _wait_for_port
from worklist.models import StepStatus

pytestmark = pytest.mark.django_db(transaction=True)

EXAMS = 40
#: 0x0111 duplicate SOP instance (the N-CREATE was committed, its answer lost in the kill);
#: 0x0110 with Error ID A710 the PPS is final (the N-SET was committed, its answer lost).
ALREADY_DONE = {0x0111, 0x0110}


def _until_answered(call) -> int:
    """Send until ris answers (it may be dead or restarting); the status it answered."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            return call().status
        except (AssertionError, OSError, RuntimeError, AttributeError):
            time.sleep(0.2)
    raise AssertionError("ris did not answer for 3 minutes")


def test_exams_survive_kill_9_of_the_whole_tree_once_each(new_ris_service):
    station = DeviceFactory(ae_title="CT1", allow_overbooking=True)
    steps = [first_step(make_order(station=station)) for _ in range(EXAMS)]
    service = new_ris_service("--only", "dicom")
    _wait_for_port(service)
    modality = Modality(service.dicom_port, ae_title="CT1")
    uids = [generate_uid() for _ in steps]
    answered: list[int] = []
    statuses: list[int] = []

    def perform() -> None:
        for step, uid in zip(steps, uids, strict=True):
            statuses.append(_until_answered(lambda s=step, u=uid: modality.n_create(
                modality.pps_for(s), uid=u)[0]))
            statuses.append(_until_answered(lambda u=uid: modality.n_set(
                u, modality.completed(series_item()))))
            answered.append(1)
        connection.close()

    worker = threading.Thread(target=perform)
    worker.start()
    deadline = time.monotonic() + 300
    while len(answered) < EXAMS // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(answered) >= EXAMS // 3, "the exams did not start"
    for pid in [service.process.pid, *process_tree(service.process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    service.process.wait(10)
    killed_after = len(answered)
    service.start("--only", "dicom")
    worker.join(600)
    assert not worker.is_alive()

    assert killed_after < EXAMS  # the kill fell inside the run
    assert set(statuses) <= {0x0000} | ALREADY_DONE, statuses
    pps = PerformedProcedureStep.objects.filter(sop_instance_uid__in=uids)
    assert pps.count() == EXAMS
    assert set(pps.values_list("status", flat=True)) == {"COMPLETED"}
    assert PerformedProcedureStep.objects.count() == EXAMS  # no stray or duplicate PPS
    for step in steps:
        step.refresh_from_db()
        assert step.status == StepStatus.COMPLETED
