"""Workflow that follows the images, end to end with real peers and no MPPS.

A DX device set to "images only" sends with DCMTK ``storescu``, either to the ris gateway or
straight to Orthanc (the PACS). The ``ris serve`` of the session delivers the HIS messages; the
HIS is the python ``hl7`` package's MLLP server. The session's server uses a stable time of 4 s
(``RIS_STUDY_STABLE_SECONDS``, see ``conftest.FAST``).
"""

from __future__ import annotations

import subprocess

import pytest

from mpps.forwarding.models import InstanceDelivery, PacsDestination, SpooledInstance, StepImages
from ris.models import HL7Destination, OutboundJob
from tests.factories import DeviceFactory, PatientFactory, ProcedureTypeFactory, make_order
from tests.factories import first_step as step_of
from tests.forwarding.conftest import wait_for
from tests.forwarding.instances import dx_study, write_files
from tests.his import HISReceiver
from tests.mwl.dcmtk import tool
from tests.service import free_port
from worklist.models import AuditEvent, Order, StepProgress, StepStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]


@pytest.fixture
def dx_step():
    station = DeviceFactory(ae_title="DX1", modality="DX", step_progress=StepProgress.IMAGES)
    order = make_order(
        patient=PatientFactory(patient_id="P-DX-1", name_alphabetic="Li^Na"),
        procedure_type=ProcedureTypeFactory(code_value="DXCHEST", modality="DX"),
        station=station,
    )
    return step_of(order)


def storescu(port: int, called: str, files) -> None:
    subprocess.run(
        [tool("storescu"), "-aet", "DX1", "-aec", called, "127.0.0.1", str(port),
         *map(str, files)],
        check=True, capture_output=True, timeout=60,
    )


def status_of(step) -> str:
    return type(step).objects.values_list("status", flat=True).get(pk=step.pk)


def his_statuses(his: HISReceiver) -> list[str]:
    return [str(message.segment("ORC")[5]) for message in his.received]


def test_an_images_only_dx_study_through_the_gateway_starts_then_completes_its_step(
    gateway, pacs, destination, dx_step, tmp_path
):
    port = free_port()
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=port, version="2.5.1")
    files = write_files(
        dx_study(3, study_uid=dx_step.requested_procedure.study_instance_uid), tmp_path / "dx"
    )

    with HISReceiver(port) as his:
        storescu(gateway.dicom_port, "RIS", files)  # no MPPS from this device

        assert status_of(dx_step) in (StepStatus.STARTED, StepStatus.COMPLETED)
        wait_for(lambda: status_of(dx_step) == StepStatus.COMPLETED, timeout=60,
                 what="the step COMPLETED once the study was stable", service=gateway)
        wait_for(lambda: len(his.received) >= 2, timeout=60, what="IP and CM at the HIS",
                 service=gateway)

    assert his_statuses(his) == ["IP", "CM"]
    assert [str(m.segment("OBR")[18]) for m in his.received] == [
        dx_step.requested_procedure.order.accession_number
    ] * 2
    assert Order.objects.get().status == "CM"
    started, completed = AuditEvent.objects.filter(
        action__in=["step.started", "step.completed"]
    ).order_by("at", "id")
    assert started.detail == "images received: first instance received from DX1"
    assert completed.detail.startswith("study stable: no new instance for 4 s (3 received")
    assert SpooledInstance.objects.filter(step=dx_step).count() == 3
    wait_for(
        lambda: InstanceDelivery.objects.filter(state=InstanceDelivery.State.COMMITTED).count()
        == 3,
        what="the study committed by Orthanc", service=gateway,
    )
    assert not OutboundJob.objects.exclude(state=OutboundJob.State.DONE).filter(
        kind="hl7.order_status"
    ).exists()


def test_a_study_sent_straight_to_orthanc_is_found_and_completes_its_step(
    gateway, pacs, dx_step, tmp_path
):
    PacsDestination.objects.create(
        name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
        send_mpps=False, send_images=False, query_availability=True,
    )
    port = free_port()
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=port, version="2.3.1")
    files = write_files(
        dx_study(2, study_uid=dx_step.requested_procedure.study_instance_uid), tmp_path / "dx"
    )

    with HISReceiver(port) as his:
        storescu(pacs.dicom_port, pacs.ae_title, files)  # bypasses the gateway: ris sees none

        wait_for(lambda: status_of(dx_step) == StepStatus.COMPLETED, timeout=90,
                 what="the step found at the PACS and COMPLETED", service=gateway)
        wait_for(lambda: len(his.received) >= 2, timeout=60, what="IP and CM at the HIS",
                 service=gateway)

    assert his_statuses(his) == ["IP", "CM"]
    images = StepImages.objects.get(step=dx_step)
    assert (images.received_instances, images.pacs_instances) == (0, 2)
    started = AuditEvent.objects.get(action="step.started")
    assert started.detail == "images received: first instance found at orthanc"
