"""MPPS exceptions, the HL7 message log and the outbound queue, acting through their services."""

from __future__ import annotations

import pytest
from django.urls import reverse
from pydicom.uid import generate_uid

from mpps import services as mpps_services
from mpps.models import Reconciliation
from ris.hl7 import handler
from ris.models import InboundMessage, OutboundJob
from ris.roles import Role
from tests.factories import DeviceFactory, ProcedureTypeFactory, at, first_step, make_order
from tests.mpps.modality import Modality as ModalityScu
from worklist.audit import Actor
from worklist.models import Modality, StepStatus


@pytest.fixture
def step(ct1, ct_head):
    return first_step(make_order(procedure_type=ct_head, station=ct1, start=at(9)))


@pytest.fixture
def unmatched(step):
    """A PPS whose Scheduled Step Attributes name a step ris does not know (a typo)."""
    ds = ModalityScu(port=0).pps_for(step)
    ds.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = "SPS-TYPO"
    ds.ScheduledStepAttributesSequence[0].AccessionNumber = ""
    return mpps_services.pps_create(
        sop_instance_uid=generate_uid(), dataset=ds, actor=Actor.ae("CT1")
    )


def test_mpps_exceptions_page_lists_unmatched_performed_steps(client_as, unmatched):
    page = client_as(Role.TECHNOLOGIST).get(reverse("web:mpps_exceptions"))
    assert list(page.context["page"]) == [unmatched]


def test_linking_an_exception_to_an_order_starts_its_step(client_as, unmatched, step):
    accession = step.requested_procedure.order.accession_number
    response = client_as(Role.TECHNOLOGIST).post(
        reverse("web:mpps_link", kwargs={"pk": unmatched.pk}), {"accession_number": accession}
    )
    unmatched.refresh_from_db()
    step.refresh_from_db()
    assert response.status_code == 302
    assert unmatched.reconciliation == Reconciliation.LINKED
    assert step.status == StepStatus.STARTED


def test_linking_to_an_unknown_accession_changes_nothing(client_as, unmatched):
    response = client_as(Role.TECHNOLOGIST).post(
        reverse("web:mpps_link", kwargs={"pk": unmatched.pk}),
        {"accession_number": "NOPE"}, follow=True,
    )
    unmatched.refresh_from_db()
    assert unmatched.reconciliation == Reconciliation.UNMATCHED
    assert "No order has accession number NOPE" in response.content.decode()


def test_dismissing_an_exception_needs_a_reason(client_as, unmatched):
    client = client_as(Role.TECHNOLOGIST)
    url = reverse("web:mpps_dismiss", kwargs={"pk": unmatched.pk})
    client.post(url, {"reason": ""})
    unmatched.refresh_from_db()
    assert unmatched.reconciliation == Reconciliation.UNMATCHED
    client.post(url, {"reason": "phantom QA scan"})
    unmatched.refresh_from_db()
    assert unmatched.reconciliation == Reconciliation.DISMISSED


def _orm(control_id: str, code: str) -> bytes:
    segments = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ORM^O01|{control_id}|P|2.3.1",
        "PID|1||P1001^^^HOSP^MR||Doe^Jane||19700101|F",
        "PV1|1|O|RAD",
        "ORC|NW|PL1^HIS||||||^^^202612011000^^R",
        f"OBR|1|PL1^HIS||{code}^{code} exam^L",
    ]
    return ("\r".join(segments) + "\r").encode()


@pytest.fixture
def failed_message(db):
    """An order for a procedure the catalogue does not have yet: stored as ERROR (AE), through
    the MLLP listener's own entry point (called in-process)."""
    handler.handle(_orm("MSG1", "MRKNEE"), "127.0.0.1:4000")
    return InboundMessage.objects.get(control_id="MSG1")


def test_hl7_log_filters_by_status_and_type(client_as, failed_message):
    client = client_as(Role.ADMIN)
    listed = client.get(reverse("web:hl7_messages"), {"status": "ERROR", "message_type": "ORM"})
    assert list(listed.context["page"]) == [failed_message]
    none = client.get(reverse("web:hl7_messages"), {"status": "PROCESSED"})
    assert list(none.context["page"]) == []
    bad = client.get(reverse("web:hl7_messages"), {"date": "yesterday"})
    assert bad.status_code == 200


def test_hl7_message_page_lays_out_segments(client_as, failed_message):
    page = client_as(Role.ADMIN).get(reverse("web:hl7_message", kwargs={"pk": failed_message.pk}))
    names = [name for name, _ in page.context["segments"]]
    assert names == ["MSH", "PID", "PV1", "ORC", "OBR"]
    assert page.context["can_reprocess"]


def test_reprocessing_after_the_catalogue_is_fixed_applies_the_message(client_as, failed_message):
    mr = DeviceFactory(ae_title="MR1", modality=Modality.MR)
    ProcedureTypeFactory(code_value="MRKNEE", modality=Modality.MR).stations.add(mr)
    response = client_as(Role.ADMIN).post(
        reverse("web:hl7_reprocess", kwargs={"pk": failed_message.pk})
    )
    failed_message.refresh_from_db()
    assert response.status_code == 302
    assert failed_message.status == InboundMessage.Status.PROCESSED
    assert failed_message.order is not None


def test_outbound_queue_shows_failed_jobs_and_retries_them(client_as, db):
    job = OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", state=OutboundJob.State.FAILED,
        attempts=20, last_error="connection refused",
    )
    done = OutboundJob.objects.create(kind="hl7.order_status", state=OutboundJob.State.DONE)
    client = client_as(Role.ADMIN)
    page = client.get(reverse("web:outbound_queue"))
    assert list(page.context["page"]) == [job]
    assert "connection refused" in page.content.decode()
    client.post(reverse("web:outbound_retry"), {"job": str(job.pk)})
    job.refresh_from_db()
    assert (job.state, job.attempts) == (OutboundJob.State.PENDING, 0)
    done.refresh_from_db()
    assert done.state == OutboundJob.State.DONE


def test_a_failed_job_is_superseded_from_the_outbound_page_with_a_reason(client_as, db):
    failed = OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", ordering_key="HIS:order:1",
        state=OutboundJob.State.FAILED, attempts=20, last_error="AE",
    )
    later = OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", ordering_key="HIS:order:1"
    )
    client = client_as(Role.ADMIN)
    page = client.get(reverse("web:outbound_queue"))
    rows = {job.pk: job.next_id for job in page.context["page"]}
    assert rows == {later.pk: None, failed.pk: later.pk}
    [his] = page.context["destinations"]
    assert (his.failed, his.held, his.waiting) == (1, 1, 1)

    client.post(reverse("web:outbound_supersede"), {"job": failed.pk, "reason": ""})
    failed.refresh_from_db()
    assert failed.state == OutboundJob.State.FAILED  # no reason, no change
    client.post(reverse("web:outbound_supersede"), {"job": failed.pk, "reason": "CM follows"})
    failed.refresh_from_db()
    assert failed.state == OutboundJob.State.SUPERSEDED


def test_admins_see_a_banner_while_a_destination_has_a_failed_job(client_as, db):
    OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", state=OutboundJob.State.FAILED
    )
    admin_page = client_as(Role.ADMIN).get(reverse("web:dashboard")).content.decode()
    desk_page = client_as(Role.FRONT_DESK).get(reverse("web:dashboard")).content.decode()
    assert "Messages are not being delivered" in admin_page
    assert "HIS: 1 failed, 0 held back, 0 waiting" in admin_page
    assert "Messages to the HIS and PACS" in admin_page  # the dashboard's queue table
    assert "Messages are not being delivered" not in desk_page
    assert "Messages to the HIS and PACS" not in desk_page


def test_order_page_shows_performed_steps_and_messages(client_as, step):
    ds = ModalityScu(port=0).pps_for(step)
    pps = mpps_services.pps_create(sop_instance_uid=generate_uid(), dataset=ds,
                                   actor=Actor.ae("CT1"))
    order = step.requested_procedure.order
    page = client_as(Role.RADIOLOGIST).get(reverse("web:order_detail", kwargs={"pk": order.pk}))
    assert page.context["integration"]["performed"] == [pps]
    assert "Performed steps (MPPS)" in page.content.decode()


@pytest.mark.parametrize(
    ("name", "kwargs", "method", "allowed", "refused"),
    [
        ("web:mpps_exceptions", {}, "get", Role.TECHNOLOGIST, Role.FRONT_DESK),
        ("web:mpps_link", {"pk": 1}, "post", Role.TECHNOLOGIST, Role.RADIOLOGIST),
        ("web:mpps_dismiss", {"pk": 1}, "post", Role.TECHNOLOGIST, Role.FRONT_DESK),
        ("web:hl7_messages", {}, "get", Role.ADMIN, Role.TECHNOLOGIST),
        ("web:hl7_message", {"pk": 1}, "get", Role.ADMIN, Role.FRONT_DESK),
        ("web:hl7_reprocess", {"pk": 1}, "post", Role.ADMIN, Role.TECHNOLOGIST),
        ("web:outbound_queue", {}, "get", Role.ADMIN, Role.FRONT_DESK),
        ("web:outbound_retry", {}, "post", Role.ADMIN, Role.RADIOLOGIST),
        ("web:outbound_supersede", {}, "post", Role.ADMIN, Role.TECHNOLOGIST),
    ],
)
def test_integration_pages_check_roles(client, client_as, name, kwargs, method, allowed, refused):
    url = reverse(name, kwargs=kwargs)
    assert getattr(client, method)(url).status_code == 302
    assert getattr(client_as(refused), method)(url).status_code == 403
    assert getattr(client_as(allowed), method)(url).status_code in (200, 302, 404)


def test_the_outbound_banner_and_queue_are_translated(client_as, db):
    OutboundJob.objects.create(
        kind="hl7.order_status", destination="HIS", state=OutboundJob.State.FAILED
    )
    client = client_as(Role.ADMIN)
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = client.get(reverse("web:outbound_queue")).content.decode()
    assert "消息未能送达" in page and "HIS：1 条失败" in page
    assert "失败（阻挡同一医嘱的后续消息" in page and "标记为已取代" in page
