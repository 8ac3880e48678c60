"""MPPS forward (IHE RAD-7): each N-CREATE / N-SET accepted from a modality is relayed, in order.

Orthanc has no MPPS SCP, so the receiving "PACS" here is a small pynetdicom MPPS SCP inside the
test that records what it receives: a stand-in because no real peer exists on this machine.
"""

from __future__ import annotations

import threading

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from mpps.forwarding.models import PacsDestination
from ris.models import OutboundJob
from tests.factories import DeviceFactory, first_step, make_order
from tests.forwarding.conftest import wait_for
from tests.mpps.modality import Modality
from tests.service import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class MppsReceiver:
    """A PACS-side MPPS SCP that accepts everything and keeps (operation, UID, data set)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, str, object]] = []
        self._lock = threading.Lock()
        self._server = None

    def _on_create(self, event):
        with self._lock:
            self.received.append(
                ("N-CREATE", event.request.AffectedSOPInstanceUID, event.attribute_list)
            )
        return 0x0000, event.attribute_list

    def _on_set(self, event):
        with self._lock:
            self.received.append(
                ("N-SET", event.request.RequestedSOPInstanceUID, event.attribute_list)
            )
        return 0x0000, event.attribute_list

    def start(self) -> None:
        ae = AE(ae_title="PACSMPPS")
        ae.add_supported_context(
            ModalityPerformedProcedureStep, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
        )
        self._server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_N_CREATE, self._on_create), (evt.EVT_N_SET, self._on_set)],
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()


@pytest.fixture
def receiver():
    scp = MppsReceiver(free_port())
    yield scp
    scp.stop()


@pytest.fixture
def mpps_destination(receiver):
    return PacsDestination.objects.create(
        name="pacs-mpps",
        ae_title="PACSMPPS",
        host="127.0.0.1",
        port=receiver.port,
        send_mpps=True,
        send_images=False,
        query_availability=False,
    )


def test_n_create_and_n_set_are_relayed_to_the_pacs_in_order(gateway, receiver, mpps_destination):
    receiver.start()
    step = first_step(make_order(station=DeviceFactory(ae_title="CT01")))
    modality = Modality(port=gateway.dicom_port, called_ae=gateway.ae_title)

    created, uid = modality.n_create(modality.pps_for(step))
    completed = modality.n_set(uid, modality.completed())

    assert (created.status, completed.status) == (0x0000, 0x0000)
    wait_for(lambda: len(receiver.received) == 2, what="two relayed messages", service=gateway)
    (op1, uid1, create), (op2, uid2, final) = receiver.received
    assert (op1, uid1, op2, uid2) == ("N-CREATE", uid, "N-SET", uid)
    patient = step.requested_procedure.order.patient
    assert create.PatientID == patient.patient_id
    assert create.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID == step.sps_id
    assert create.PerformedProcedureStepStatus == "IN PROGRESS"
    assert final.PerformedProcedureStepStatus == "COMPLETED"


def test_relay_waits_for_a_pacs_that_is_down_and_keeps_the_order(
    gateway, receiver, mpps_destination
):
    step = first_step(make_order(station=DeviceFactory(ae_title="CT01")))
    modality = Modality(port=gateway.dicom_port, called_ae=gateway.ae_title)

    _, uid = modality.n_create(modality.pps_for(step))
    modality.n_set(uid, modality.completed())
    wait_for(
        lambda: OutboundJob.objects.filter(kind="dicom.mpps", attempts__gte=1).exists(),
        what="a relay attempt against the stopped SCP",
        service=gateway,
    )
    assert receiver.received == []

    receiver.start()
    wait_for(lambda: len(receiver.received) == 2, what="both relayed messages", service=gateway)
    assert [(op, u) for op, u, _ in receiver.received] == [("N-CREATE", uid), ("N-SET", uid)]
