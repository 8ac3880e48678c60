"""The curl examples of docs/dicomweb.md answer what the document says, against a running
``ris serve`` (MWL-RS, MPPS-RS, UPS-RS including the event channel), in document order."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token

from ris.roles import Role
from tests.dicomweb.conftest import device_account
from tests.doc_examples import examples, run
from tests.factories import DeviceFactory, ProcedureTypeFactory, at, first_step, make_order
from worklist import ups


def test_every_operation_has_an_example():
    texts = "\n".join(text for _, _, text in examples("dicomweb.md"))
    for operation in ("modality-scheduled-procedure-steps?", "modality-performed-procedure-steps",
                      "?update", "workitems?", "workitems/$WORKITEM\"", "X POST \"$RIS/dicomweb/"
                      "workitems\"", "/state", "cancelrequest", "/subscribers/AI1\"", "/suspend",
                      "X DELETE", "?transaction=", "create_connection"):
        assert operation in texts, operation


@pytest.mark.django_db(transaction=True)
def test_the_documented_examples_answer_as_documented(ris_service, tmp_path):
    ct1 = DeviceFactory(ae_title="CT1", station_name="CT ROOM 1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", code_meaning="CT head", modality="CT")
    step = first_step(make_order(station=ct1, start=at(8)))
    workitem = first_step(make_order(station=ct1, start=at(10)))
    person = User.objects.create_user("doc-desk", password="x" * 12)
    for role in (Role.FRONT_DESK, Role.TECHNOLOGIST):
        person.groups.add(Group.objects.get(name=role.value))
    rp = step.requested_procedure
    env = {
        "RIS": ris_service.base_url,
        "EVENTS": f"ws://127.0.0.1:{ris_service.events_port}",
        "TOKEN": Token.objects.create(user=person).key,
        "DEVICE_TOKEN": device_account(ct1)[1],
        "TODAY": f"{timezone.localdate():%Y%m%d}",
        "TOMORROW": f"{timezone.localdate() + dt.timedelta(days=1):%Y%m%d}",
        "PATIENT_ID": rp.order.patient.patient_id,
        "ACCESSION": rp.order.accession_number,
        "RP_ID": rp.requested_procedure_id,
        "SPS_ID": step.sps_id,
        "STUDY_UID": rp.study_instance_uid,
        "WORKITEM": ups.workitem_uid(workitem.pk),
        "PPS_UID": generate_uid(),
    }
    found = examples("dicomweb.md")
    assert len(found) >= 15
    for expected, language, text in found:
        run(expected, language, text, env, tmp_path)
