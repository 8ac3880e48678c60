"""The exceptions work list (``mpps.exceptions``, ``web:exceptions``) and its dashboard counts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from pydicom.uid import generate_uid

from mpps import services as mpps_services
from mpps.exceptions import ExceptionFilter, exception_counts, exceptions
from mpps.forwarding import services as forwarding
from mpps.forwarding.models import StepImages
from ris.roles import Role
from tests.factories import PatientFactory, at, first_step, make_order
from tests.forwarding.instances import ct_study
from tests.mpps.modality import Modality as ModalityScu
from worklist import services
from worklist.audit import Actor
from worklist.models import ScheduledProcedureStep, StepStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def spool(settings, tmp_path):
    settings.RIS_FORWARD_SPOOL_DIR = tmp_path / "spool"
    settings.RIS_EXCEPTION_NO_IMAGES_HOURS = 4
    forwarding._match_cache.clear()


@pytest.fixture
def step(ct1, ct_head):
    patient = PatientFactory(patient_id="P-5", name_alphabetic="Zhou^Min", name_ideographic="周^敏")
    return first_step(make_order(patient=patient, procedure_type=ct_head, station=ct1, start=at(9)))


def unmatched_study(count=2, patient_id="WALK-IN-1"):
    for ds in ct_study(count, patient_id=patient_id, accession="NOT-OURS"):
        forwarding.receive_instance(dataset=ds, file_meta=ds.file_meta, calling_ae_title="CT9")


def unmatched_pps(step):
    ds = ModalityScu(port=0).pps_for(step)
    ds.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = "SPS-TYPO"
    ds.ScheduledStepAttributesSequence[0].AccessionNumber = ""
    return mpps_services.pps_create(
        sop_instance_uid=generate_uid(), dataset=ds, actor=Actor.ae("CT1")
    )


def completed_by_mpps(step, hours_ago: float):
    ds = ModalityScu(port=0).pps_for(step)
    mpps_services.pps_create(sop_instance_uid=generate_uid(), dataset=ds, actor=Actor.ae("CT1"))
    services.step_transition(step=step, to=StepStatus.COMPLETED, actor=Actor.ae("CT1"))
    ScheduledProcedureStep.objects.filter(pk=step.pk).update(
        updated_at=timezone.now() - dt.timedelta(hours=hours_ago)
    )


def test_an_unmatched_gateway_study_is_one_row_with_its_instance_count():
    unmatched_study(3)
    [row] = exceptions()
    assert (row.kind, row.patient_id, row.accession_number, row.count) == (
        "gateway", "WALK-IN-1", "NOT-OURS", 3
    )
    assert row.source == "CT9" and "no order" in row.detail


def test_an_unmatched_pps_is_listed(step):
    pps = unmatched_pps(step)
    [row] = exceptions(ExceptionFilter(kind="pps"))
    assert row.ref == ("pps", pps.pk) and row.source == pps.station_ae_title


def test_a_study_at_the_pacs_that_matches_no_order_is_listed_until_it_matches(step):
    known_uid = step.requested_procedure.study_instance_uid
    studies = [
        {"study_instance_uid": "1.2.3.4", "accession_number": "X9", "patient_id": "P-77",
         "patient_name": "Li^Lei", "study_date": timezone.localdate(), "modalities": "DX",
         "description": "Chest", "instances": 2},
        {"study_instance_uid": known_uid, "accession_number": "", "patient_id": "P-5",
         "patient_name": "", "study_date": None, "modalities": "CT", "description": "",
         "instances": 5},
    ]
    assert forwarding.record_pacs_studies(destination="orthanc", studies=studies) == 1
    [row] = exceptions(ExceptionFilter(kind="pacs"))
    assert (row.patient_id, row.accession_number, row.count, row.source) == (
        "P-77", "X9", 2, "orthanc"
    )

    studies[0]["accession_number"] = step.requested_procedure.order.accession_number
    assert forwarding.record_pacs_studies(destination="orthanc", studies=studies) == 0
    assert exceptions(ExceptionFilter(kind="pacs")) == []


def test_a_step_completed_by_mpps_without_images_after_the_set_hours_is_listed(step):
    completed_by_mpps(step, hours_ago=5)
    [row] = exceptions(ExceptionFilter(kind="no_images"))
    assert row.ref == ("step", step.requested_procedure.order_id)
    assert row.patient_id == "P-5"


def test_a_completed_step_with_images_or_too_recent_is_not_listed(step):
    completed_by_mpps(step, hours_ago=1)
    assert exception_counts()["no_images"] == 0
    ScheduledProcedureStep.objects.filter(pk=step.pk).update(
        updated_at=timezone.now() - dt.timedelta(hours=5)
    )
    StepImages.objects.create(step=step, received_instances=4)
    assert exception_counts()["no_images"] == 0


def test_filters_narrow_the_list_by_kind_patient_and_modality(step):
    unmatched_study(1, patient_id="WALK-IN-1")
    unmatched_study(1, patient_id="WALK-IN-2")
    unmatched_pps(step)
    assert len(exceptions()) == 3
    assert [r.patient_id for r in exceptions(ExceptionFilter(patient_id="WALK-IN-2"))] == [
        "WALK-IN-2"
    ]
    assert exceptions(ExceptionFilter(modality="MR")) == []
    assert exception_counts() == {"gateway": 2, "pps": 1, "pacs": 0, "no_images": 0}


def test_the_exceptions_screen_lists_and_filters_for_technologists(client_as, step):
    unmatched_study(2)
    unmatched_pps(step)
    client = client_as(Role.TECHNOLOGIST)
    page = client.get(reverse("web:exceptions"))
    assert page.status_code == 200
    assert [row.kind for row in page.context["page"]] != []
    assert {row.kind for row in page.context["page"]} == {"gateway", "pps"}
    only = client.get(reverse("web:exceptions"), {"kind": "gateway"})
    assert [row.kind for row in only.context["page"]] == ["gateway"]
    assert client_as(Role.FRONT_DESK).get(reverse("web:exceptions")).status_code == 403


def test_the_dashboard_counts_exceptions_for_technologists_only(client_as, step):
    unmatched_study(1)
    tech = client_as(Role.TECHNOLOGIST).get(reverse("web:dashboard"))
    assert ("gateway", "Unmatched studies at the gateway", 1) in [
        (k, str(label), n) for k, label, n in tech.context["exceptions"]
    ]
    assert client_as(Role.FRONT_DESK).get(reverse("web:dashboard")).context["exceptions"] is None


def test_the_exceptions_screen_is_translated(client_as, step):
    unmatched_study(1)
    client = client_as(Role.TECHNOLOGIST)
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = client.get(reverse("web:exceptions")).content.decode()
    assert "异常" in page and "网关未匹配的检查" in page and "PACS 中无医嘱的检查" in page


# --- linking a gateway study to its order (mpps.forwarding.services.study_link) --------------


@pytest.fixture
def plain_pacs(db):
    from mpps.forwarding.models import PacsDestination

    return PacsDestination.objects.create(
        name="pacs", ae_title="PACS", host="127.0.0.1", port=1, storage_commitment=False
    )


def test_a_technologist_links_an_unmatched_study_from_the_exceptions_screen(
    client_as, step, plain_pacs
):
    from mpps.forwarding.models import SpooledInstance

    unmatched_study(1)
    uid = SpooledInstance.objects.get().study_instance_uid
    client = client_as(Role.TECHNOLOGIST)
    page = client.get(reverse("web:exceptions")).content.decode()
    assert f'name="study_instance_uid" value="{uid}"' in page

    response = client.post(reverse("web:exception_study_link"), {
        "study_instance_uid": uid, "modality": "CT",
        "accession_number": step.requested_procedure.order.accession_number, "note": "typo",
    }, follow=True)

    assert SpooledInstance.objects.get().step_id == step.pk
    shown = response.content.decode()
    assert "pacs received the corrected instances under the same SOP Instance UIDs" in shown
    assert "keeps the old copy under WALK-IN-1" in shown  # the Patient ID changed
    assert exception_counts()["gateway"] == 0


def test_an_unknown_accession_links_nothing(client_as, step, plain_pacs):
    from mpps.forwarding.models import SpooledInstance

    unmatched_study(1)
    response = client_as(Role.TECHNOLOGIST).post(reverse("web:exception_study_link"), {
        "study_instance_uid": SpooledInstance.objects.get().study_instance_uid,
        "accession_number": "NO-SUCH",
    }, follow=True)
    assert "No order with accession number NO-SUCH" in response.content.decode()
    assert not SpooledInstance.objects.get().matched


def test_images_on_the_wrong_order_are_moved_from_that_order_s_page(client_as, step, ct_head, ct1):
    from mpps.forwarding.models import SpooledInstance

    patient = step.requested_procedure.order.patient
    wrong = first_step(make_order(patient=patient, procedure_type=ct_head, station=ct1,
                                  start=at(11)))
    for ds in ct_study(1, patient_id="P-5", study_uid=wrong.requested_procedure.study_instance_uid):
        forwarding.receive_instance(dataset=ds, file_meta=ds.file_meta, calling_ae_title="CT1")
    client = client_as(Role.TECHNOLOGIST)
    order_page = client.get(reverse("web:order_detail", args=[wrong.requested_procedure.order_id]))
    assert reverse("web:step_studies", args=[wrong.pk]) in order_page.content.decode()
    page = client.get(reverse("web:step_studies", args=[wrong.pk])).content.decode()
    assert wrong.requested_procedure.study_instance_uid in page

    response = client.post(reverse("web:exception_study_link"), {
        "study_instance_uid": wrong.requested_procedure.study_instance_uid, "modality": "CT",
        "accession_number": step.requested_procedure.order.accession_number,
        "back": wrong.pk,
    })

    assert response.url == reverse("web:order_detail", args=[step.requested_procedure.order_id])
    assert SpooledInstance.objects.get().step_id == step.pk


def test_the_link_outcome_is_translated(client_as, step, plain_pacs):
    from mpps.forwarding.models import SpooledInstance

    unmatched_study(1)
    client = client_as(Role.TECHNOLOGIST)
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    response = client.post(reverse("web:exception_study_link"), {
        "study_instance_uid": SpooledInstance.objects.get().study_instance_uid,
        "accession_number": step.requested_procedure.order.accession_number,
    }, follow=True)
    shown = response.content.decode()
    assert "更正到医嘱" in shown and "按患者归档图像的 PACS" in shown
    assert "instance(s)" not in shown and "SOP Instance UIDs:" not in shown


def test_the_step_studies_page_is_translated(client_as, step):
    client = client_as(Role.TECHNOLOGIST)
    client.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = client.get(reverse("web:step_studies", args=[step.pk])).content.decode()
    assert "将图像关联到其他医嘱" in page and "网关未收到本检查的图像" in page
    assert "Link the images" not in page and "wrong worklist entry" not in page
