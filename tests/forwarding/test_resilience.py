"""Nothing accepted from a modality is lost: not while the PACS is down, not when ris crashes."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from mpps.forwarding.models import InstanceDelivery, SpooledInstance
from ris.models import OutboundJob
from tests.factories import DeviceFactory, first_step, make_order
from tests.forwarding.conftest import kill_hard, spool_files, wait_for
from tests.forwarding.instances import ct_study, store

pytestmark = pytest.mark.django_db(transaction=True)

FINAL = [InstanceDelivery.State.COMMITTED, InstanceDelivery.State.STORED]


@pytest.fixture
def study_uid():
    step = first_step(make_order(station=DeviceFactory(ae_title="CT01")))
    return step.requested_procedure.study_instance_uid


def committed() -> int:
    return InstanceDelivery.objects.filter(state=InstanceDelivery.State.COMMITTED).count()


def test_instances_wait_while_the_pacs_is_down_and_arrive_once_when_it_is_back(
    gateway, pacs, destination, study_uid
):
    pacs.stop()
    images = ct_study(5, study_uid=study_uid)

    assert store(gateway.dicom_port, images) == [0x0000] * 5  # spooled: the modality may go

    wait_for(
        lambda: OutboundJob.objects.filter(
            kind="dicom.store", state=OutboundJob.State.PENDING, attempts__gte=2
        ).exists(),
        what="a store job retried while the PACS is down",
        service=gateway,
    )
    assert set(InstanceDelivery.objects.values_list("state", flat=True)) == {"PENDING"}
    assert len(spool_files(gateway, images)) == 5

    pacs.start()
    wait_for(lambda: committed() == 5, what="delivery once the PACS is back", service=gateway)
    at_pacs = Counter(
        i["MainDicomTags"]["SOPInstanceUID"] for i in pacs.instances_of_study(study_uid)
    )
    assert at_pacs == Counter(ds.SOPInstanceUID for ds in images)
    # "None twice": each instance was C-STOREd exactly once, after the PACS came back.
    assert list(InstanceDelivery.objects.values_list("store_count", flat=True)) == [1] * 5
    wait_for(lambda: spool_files(gateway, images) == [], what="an empty spool")


def test_ris_killed_mid_forward_loses_nothing(gateway, pacs, destination, study_uid):
    images = ct_study(40, series=2, study_uid=study_uid)
    statuses: list = []
    modality = threading.Thread(
        target=lambda: statuses.extend(store(gateway.dicom_port, images)), daemon=True
    )
    modality.start()
    wait_for(
        lambda: InstanceDelivery.objects.exclude(state="PENDING").exists(),
        interval=0.02,
        what="forwarding under way",
        service=gateway,
    )

    kill_hard(gateway)
    forwarded_at_kill = InstanceDelivery.objects.filter(state__in=FINAL).count()
    modality.join(60)
    assert not modality.is_alive()
    assert forwarded_at_kill < len(images), "the crash must fall in the middle of forwarding"
    # Every instance ris acknowledged is in its spool and database, whatever the crash.
    acknowledged = {
        ds.SOPInstanceUID for ds, s in zip(images, statuses, strict=True) if s == 0x0000
    }
    assert acknowledged <= set(SpooledInstance.objects.values_list("sop_instance_uid", flat=True))

    gateway.start()
    gateway.wait_healthy(timeout=180)
    # The modality sends again what it got no Success for (as modalities do).
    unacknowledged = [ds for ds in images if ds.SOPInstanceUID not in acknowledged]
    assert store(gateway.dicom_port, unacknowledged) == [0x0000] * len(unacknowledged)

    wait_for(
        lambda: committed() == len(images),
        timeout=60,
        what="every instance committed after the restart",
        service=gateway,
    )
    at_pacs = Counter(
        i["MainDicomTags"]["SOPInstanceUID"] for i in pacs.instances_of_study(study_uid)
    )
    assert at_pacs == Counter(ds.SOPInstanceUID for ds in images)
    wait_for(lambda: spool_files(gateway, images) == [], what="an empty spool")
