"""A storage commitment report on the association of the N-ACTION itself (PS3.4 J.3.3).

Orthanc always reports on a new association, so this PACS is a small pynetdicom Storage and
Storage Commitment SCP inside the test that answers the N-ACTION and then sends the
N-EVENT-REPORT on the same association: a stand-in for archives that do this, none of which is
installed here.
"""

from __future__ import annotations

import threading

import pytest
from pydicom import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.sop_class import StorageCommitmentPushModel

from mpps.forwarding.models import CommitmentRequest, InstanceDelivery, PacsDestination
from tests.forwarding.conftest import wait_for
from tests.forwarding.instances import ct_study, store
from tests.service import free_port

pytestmark = pytest.mark.django_db(transaction=True)


class SameAssociationPacs:
    def __init__(self) -> None:
        self.port = free_port()
        self.stored: set[str] = set()
        self._server = None

    def _on_store(self, event):
        self.stored.add(event.request.AffectedSOPInstanceUID)
        return 0x0000

    def _on_action(self, event):
        request = event.action_information
        report = Dataset()
        report.TransactionUID = request.TransactionUID
        report.ReferencedSOPSequence = list(request.ReferencedSOPSequence)
        assoc = event.assoc

        def send_report():
            # After the N-ACTION response went out, still on the requestor's association.
            assoc.send_n_event_report(
                report, 1, StorageCommitmentPushModel, "1.2.840.10008.1.20.1.1"
            )

        threading.Timer(0.2, send_report).start()
        return 0x0000, None

    def start(self) -> None:
        ae = AE(ae_title="SAMEASSOC")
        ae.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)
        ae.add_supported_context(StorageCommitmentPushModel, ExplicitVRLittleEndian)
        self._server = ae.start_server(
            ("127.0.0.1", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, self._on_store), (evt.EVT_N_ACTION, self._on_action)],
        )

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()


@pytest.fixture
def archive():
    pacs = SameAssociationPacs()
    pacs.start()
    yield pacs
    pacs.stop()


def test_report_on_the_same_association_commits_the_instances(gateway, archive):
    PacsDestination.objects.create(
        name="same-association",
        ae_title="SAMEASSOC",
        host="127.0.0.1",
        port=archive.port,
        send_mpps=False,
        query_availability=False,
        commitment_wait_seconds=10,
    )
    images = ct_study(3)

    assert store(gateway.dicom_port, images) == [0x0000] * 3

    wait_for(
        lambda: InstanceDelivery.objects.filter(state="COMMITTED").count() == 3,
        what="commitment reported on the same association",
        service=gateway,
    )
    assert archive.stored == {ds.SOPInstanceUID for ds in images}
    assert {c.report_via for c in CommitmentRequest.objects.all()} == {"same association"}
