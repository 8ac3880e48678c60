"""The curl examples of docs/fhir.md answer what the document says, against a running
``ris serve``, in document order."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token

from mpps.forwarding.models import StepImages
from ris.roles import Role
from tests.doc_examples import examples, run
from tests.factories import DeviceFactory, ProcedureTypeFactory, at, first_step, make_order


@pytest.mark.django_db(transaction=True)
def test_the_documented_examples_answer_as_documented(ris_service, make_user, tmp_path):
    ct1 = DeviceFactory(ae_title="CT1", station_name="CT ROOM 1", modality="CT")
    ProcedureTypeFactory(code_value="CTHEAD", code_meaning="CT head", modality="CT")
    booked = make_order(station=ct1, start=at(8))
    step = first_step(booked)
    StepImages.objects.create(step=step, received_series=1, received_instances=3,
                              last_received_at=timezone.now())
    patient = booked.patient
    waiting = make_order(patient=patient)
    other_waiting = make_order(patient=patient)
    env = {
        "RIS": ris_service.base_url,
        "TOKEN": Token.objects.create(user=make_user("fhir-doc-desk", Role.FRONT_DESK)).key,
        "TODAY": timezone.localdate().isoformat(),
        "TOMORROW": (timezone.localdate() + dt.timedelta(days=1)).isoformat(),
        "PATIENT": str(patient.pk),
        "ACCESSION": booked.accession_number,
        "SERVICE_REQUEST": str(waiting.procedures.get().pk),
        "WAITING": str(other_waiting.procedures.get().pk),
        "APPOINTMENT": str(step.pk),
        "SCHEDULE": str(ct1.pk),
    }
    found = examples("fhir.md")
    assert {"200", "201", "409"} <= {expected for expected, _, _ in found}
    for expected, language, text in found:
        run(expected, language, text, env, tmp_path)
