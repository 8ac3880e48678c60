"""Scale-out on PostgreSQL: two, then three ``ris serve`` processes on different ports share one
database.

HL7 orders go to both, the worklist is read from both, each exam's MPPS N-CREATE goes to one
and its N-SET to the other; one scheduler leads, the HIS gets every status message exactly once
and in order, and no identifier is handed out twice. With three, each exam's images also go to
a third process's storage gateway and on to a real Orthanc: every instance is sent exactly once.
Real peers: the ``hl7`` package's MLLP client and server, DCMTK findscu, pynetdicom as the
modality, Orthanc as the PACS.

PostgreSQL only: SQLite is one file for one host, and ris runs one process per database on it
(the suite's PostgreSQL leg in .ci/run runs this test).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict

import pytest
from django.db import connection
from django.utils import timezone

from mpps.forwarding.models import InstanceDelivery, PacsDestination
from ris.models import HL7Destination, OutboundJob
from ris.scheduler import ADVISORY_LOCK_KEY
from tests.forwarding.conftest import FAST, orthanc_server, pacs, ris_dicom_port  # noqa: F401
from tests.forwarding.instances import ct_study, store
from tests.hl7.conftest import catalogue, orm, read_ack, send  # noqa: F401 - a fixture
from tests.hl7.test_order_status import HISReceiver, wait_until
from tests.mpps.modality import Modality, series_item
from tests.mwl.dcmtk import findscu, sps
from tests.service import free_port
from worklist.models import (
    AuditEvent,
    Order,
    RequestedProcedure,
    ScheduledProcedureStep,
    StepStatus,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]

ORDERS = 20


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("scale-out shares one PostgreSQL database; SQLite serves one process")


@pytest.fixture
def two_servers(postgresql, new_ris_service):
    first, second = new_ris_service(), new_ris_service()
    first.wait_healthy(timeout=240)
    second.wait_healthy(timeout=240)
    return first, second


def _send_orders(port: int, numbers: range, start: dt.datetime, acks: list,
                 prefix: str = "SCALE") -> None:
    for n in numbers:
        message = orm(
            f"{prefix}-{n}",
            f"PL-{prefix}-{n}",
            start=(start + dt.timedelta(minutes=20 * n)).strftime("%Y%m%d%H%M"),
            patient_id=f"SC{n:04d}",
            name=f"Scale^Patient{n}",
        )
        acks.append(read_ack(send(port, message)).code)


def _advisory_leaders() -> int:
    """Sessions holding the scheduler's advisory lock in this database (bigint key: two halves)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s AND objid = %s",
            [ADVISORY_LOCK_KEY >> 32, ADVISORY_LOCK_KEY & 0xFFFFFFFF],
        )
        return cursor.fetchone()[0]


def test_two_processes_on_one_postgresql_share_the_work_exactly_once(two_servers, catalogue):  # noqa: F811
    first, second = two_servers
    his_port = free_port()
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=his_port)
    start = timezone.localtime().replace(hour=7, minute=0, second=0, microsecond=0)

    # HL7 to both at once: every message acknowledged AA, every order once.
    acks: list[str] = []
    senders = [
        threading.Thread(target=_send_orders, args=(server.mllp_port, numbers, start, acks))
        for server, numbers in ((first, range(0, ORDERS, 2)), (second, range(1, ORDERS, 2)))
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(120)
    assert acks == ["AA"] * ORDERS
    orders = Order.objects.filter(placer_order_number__startswith="PL-SCALE-")
    assert orders.count() == ORDERS
    steps = ScheduledProcedureStep.objects.filter(requested_procedure__order__in=orders)
    procedures = RequestedProcedure.objects.filter(order__in=orders)
    assert len(set(orders.values_list("accession_number", flat=True))) == ORDERS
    assert len(set(steps.values_list("sps_id", flat=True))) == ORDERS
    assert len(set(procedures.values_list("study_instance_uid", flat=True))) == ORDERS

    # The worklist is the same from either process.
    keys = ["PatientID", *sps(Modality="CT", ScheduledProcedureStepStartDate=f"{start:%Y%m%d}",
                              ScheduledProcedureStepID="")]
    expected = set(steps.values_list("sps_id", flat=True))
    for server in (first, second):
        result = findscu(server.dicom_port, keys, calling_ae="CT1")
        assert result.final == "Success", result.output
        assert expected <= result.sps_ids

    # Each exam: N-CREATE to one process, N-SET COMPLETED to the other.
    with HISReceiver(his_port) as his:
        for i, step in enumerate(steps.select_related("requested_procedure__order__patient")):
            create_at, set_at = (first, second) if i % 2 == 0 else (second, first)
            modality = Modality(create_at.dicom_port, ae_title="CT1")
            response, uid = modality.n_create(modality.pps_for(step))
            assert response.status == 0x0000, response
            response = Modality(set_at.dicom_port, ae_title="CT1").n_set(
                uid, modality.completed(series_item())
            )
            assert response.status == 0x0000, response
        assert set(steps.values_list("status", flat=True)) == {StepStatus.COMPLETED}

        jobs = OutboundJob.objects.filter(kind="hl7.order_status", destination="HIS")
        wait_until(
            lambda: jobs.count() == 2 * ORDERS
            and not jobs.exclude(state=OutboundJob.State.DONE).exists(),
            timeout=180,
            message="every status message delivered",
        )
        wait_until(lambda: len(his.received) >= 2 * ORDERS, timeout=30, message="HIS received")

        received = list(his.received)
    control_ids = [str(message.segment("MSH")[10]) for message in received]
    assert len(control_ids) == len(set(control_ids)) == 2 * ORDERS  # each job sent exactly once
    by_order: dict[str, list[str]] = defaultdict(list)
    for message in received:
        by_order[str(message.segment("ORC")[2]).split("^")[0]].append(
            str(message.segment("ORC")[5])
        )
    assert {placer: statuses for placer, statuses in by_order.items()} == {
        f"PL-SCALE-{n}": ["IP", "CM"] for n in range(ORDERS)
    }

    # One scheduler leads the database; the other process stands by.
    assert _advisory_leaders() == 1



THREE_ORDERS = 12
IMAGES_PER_STUDY = 2


def test_three_processes_share_hl7_worklist_mpps_and_forwarding_exactly_once(
    postgresql, new_ris_service, catalogue, pacs  # noqa: F811
):
    servers = [new_ris_service(**FAST) for _ in range(3)]
    for server in servers:
        server.wait_healthy(timeout=300)
    his_port = free_port()
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=his_port)
    PacsDestination.objects.create(
        name="orthanc", ae_title=pacs.ae_title, host="127.0.0.1", port=pacs.dicom_port,
        send_mpps=False, send_images=True, storage_commitment=False,
    )
    start = timezone.localtime().replace(hour=7, minute=0, second=0, microsecond=0)

    # HL7 to all three at once.
    acks: list[str] = []
    senders = [
        threading.Thread(target=_send_orders,
                         args=(server.mllp_port, range(i, THREE_ORDERS, 3), start, acks, "TRI"))
        for i, server in enumerate(servers)
    ]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(180)
    assert acks == ["AA"] * THREE_ORDERS
    orders = Order.objects.filter(placer_order_number__startswith="PL-TRI-")
    assert orders.count() == THREE_ORDERS
    steps = ScheduledProcedureStep.objects.filter(requested_procedure__order__in=orders)
    procedures = RequestedProcedure.objects.filter(order__in=orders)
    assert len(set(orders.values_list("accession_number", flat=True))) == THREE_ORDERS
    assert len(set(steps.values_list("sps_id", flat=True))) == THREE_ORDERS
    assert len(set(procedures.values_list("study_instance_uid", flat=True))) == THREE_ORDERS

    keys = ["PatientID", *sps(Modality="CT", ScheduledProcedureStepStartDate=f"{start:%Y%m%d}",
                              ScheduledProcedureStepID="")]
    expected = set(steps.values_list("sps_id", flat=True))
    for server in servers:
        result = findscu(server.dicom_port, keys, calling_ae="CT1")
        assert result.final == "Success", result.output
        assert expected <= result.sps_ids

    # Each exam: N-CREATE to one process, N-SET to the next, the images to the third's gateway.
    sent_uids: set[str] = set()
    with HISReceiver(his_port) as his:
        for i, step in enumerate(steps.select_related("requested_procedure__order__patient")):
            create_at, set_at, store_at = servers[i % 3], servers[(i + 1) % 3], servers[(i + 2) % 3]
            modality = Modality(create_at.dicom_port, ae_title="CT1")
            response, uid = modality.n_create(modality.pps_for(step))
            assert response.status == 0x0000, response
            images = ct_study(IMAGES_PER_STUDY,
                              study_uid=step.requested_procedure.study_instance_uid)
            assert store(store_at.dicom_port, images, ae_title="CT1") == [0] * IMAGES_PER_STUDY
            sent_uids |= {ds.SOPInstanceUID for ds in images}
            response = Modality(set_at.dicom_port, ae_title="CT1").n_set(
                uid, modality.completed(series_item())
            )
            assert response.status == 0x0000, response
        assert set(steps.values_list("status", flat=True)) == {StepStatus.COMPLETED}

        jobs = OutboundJob.objects.filter(kind="hl7.order_status", destination="HIS")
        wait_until(
            lambda: jobs.count() == 2 * THREE_ORDERS
            and not jobs.exclude(state=OutboundJob.State.DONE).exists(),
            timeout=240, message="every status message delivered",
        )
        wait_until(lambda: len(his.received) >= 2 * THREE_ORDERS, timeout=30,
                   message="HIS received")
        received = list(his.received)
    control_ids = [str(message.segment("MSH")[10]) for message in received]
    assert len(control_ids) == len(set(control_ids)) == 2 * THREE_ORDERS
    by_order: dict[str, list[str]] = defaultdict(list)
    for message in received:
        by_order[str(message.segment("ORC")[2]).split("^")[0]].append(
            str(message.segment("ORC")[5]))
    assert dict(by_order) == {f"PL-TRI-{n}": ["IP", "CM"] for n in range(THREE_ORDERS)}

    # Every instance at the PACS, each stored by exactly one delivery, once.
    total = IMAGES_PER_STUDY * THREE_ORDERS
    deliveries = InstanceDelivery.objects.all()
    wait_until(
        lambda: deliveries.filter(state=InstanceDelivery.State.STORED).count() == total,
        timeout=240, message="every instance stored at the PACS",
    )
    assert deliveries.count() == total
    assert set(deliveries.values_list("store_count", flat=True)) == {1}
    at_pacs = set()
    for procedure in procedures:
        at_pacs |= {i["MainDicomTags"]["SOPInstanceUID"]
                    for i in pacs.instances_of_study(procedure.study_instance_uid)}
    assert at_pacs == sent_uids
    sent = AuditEvent.objects.filter(action="dicom.instances_sent")
    assert sum(row.after["instances"] for row in sent) == total
    store_jobs = OutboundJob.objects.filter(kind="dicom.store")
    assert not store_jobs.exclude(state=OutboundJob.State.DONE).exists()

    assert _advisory_leaders() == 1
