"""schemathesis against the live schema: no input makes the API fail, every answer fits the schema.

The schema is fetched from ``/api/schema/`` of the running Django app (in-process WSGI, over the
test database) and every operation gets generated requests, valid and invalid. Bounded for the
suite's time budget: ``MAX_EXAMPLES`` examples per operation (hypothesis, no shrinking deadline).
Path ids are mapped onto seeded objects half of the time, so detail views and actions are
exercised on real rows and not only answered with 404.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from pydicom.uid import generate_uid
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from mpps import services as mpps_services
from mpps.forwarding.models import PacsDestination
from ris.hl7 import handler
from ris.models import HL7Destination, InboundMessage, OutboundJob
from ris.wsgi import application
from tests.factories import DeviceFactory, PatientFactory, ProcedureTypeFactory, at, make_order
from tests.mpps.modality import Modality
from worklist.audit import Actor

MAX_EXAMPLES = 10


@pytest.fixture
def in_process_wsgi():
    """Keep the test's database connection open across requests, as Django's test client does.

    The WSGI handler closes connections at the end of each request; in-process, that would close
    the connection holding the test's transaction.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, make_user, in_process_wsgi):
    from ris.roles import Role

    station = DeviceFactory(ae_title="FUZZ1")
    ptype = ProcedureTypeFactory()
    ptype.stations.add(station)
    patient = PatientFactory()
    booked = make_order(patient=patient, procedure_type=ptype, station=station, start=at(9))
    unbooked = make_order(patient=patient, procedure_type=ptype)
    exception = _unmatched_pps(booked)
    failed_message = _failed_hl7_message()
    job = OutboundJob.objects.create(kind="hl7.order_status", state=OutboundJob.State.FAILED)
    his = HL7Destination.objects.create(name="HIS", host="his.example", port=2575)
    pacs = PacsDestination.objects.create(name="PACS", ae_title="PACS", host="pacs", port=104)
    ids = sorted(
        {
            station.pk,
            ptype.pk,
            patient.pk,
            booked.pk,
            unbooked.pk,
            *(s.pk for o in (booked, unbooked) for p in o.procedures.all() for s in p.steps.all()),
            exception.pk,
            failed_message.pk,
            job.pk,
            his.pk,
            pacs.pk,
        }
    )
    user = make_user("fuzzer", Role.ADMIN)
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}"}
    config = schemathesis.Config.from_dict(
        {
            "headers": headers,
            # The coverage phase (every boundary value of every field) alone takes minutes;
            # the suite runs the examples and fuzzing phases, bounded by MAX_EXAMPLES.
            "phases": {"coverage": {"enabled": False}},
            "generation": {"max-examples": MAX_EXAMPLES},
        }
    )
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", application, headers=headers, config=config
    )

    @schema.hook
    def map_path_parameters(context, path_parameters):
        if path_parameters and isinstance(path_parameters.get("id"), int):
            path_parameters["id"] = ids[path_parameters["id"] % len(ids)]
        return path_parameters

    return schema


def _unmatched_pps(order):
    """An MPPS exception: the modality named a step ris does not know."""
    step = order.procedures.get().steps.get()
    dataset = Modality(port=0).pps_for(step)
    dataset.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = "SPS-TYPO"
    return mpps_services.pps_create(
        sop_instance_uid=generate_uid(), dataset=dataset, actor=Actor.ae("FUZZ1")
    )


def _failed_hl7_message() -> InboundMessage:
    """An ORM whose procedure code is not in the catalogue: stored as ERROR for reprocessing."""
    raw = (
        b"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ORM^O01|FUZZ-1|P|2.3.1\r"
        b"PID|1||PF-1^^^HOSP^MR||Doe^Jane||19700101|F\r"
        b"ORC|NW|PL-FUZZ^HIS\r"
        b"OBR|1|PL-FUZZ^HIS||NOSUCH^No such exam^L\r"
    )
    handler.handle(raw, "127.0.0.1:5000")
    return InboundMessage.objects.get(control_id="FUZZ-1")


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_answers_every_generated_request_within_its_schema(case, api_schema):
    token = Token.objects.get(user__username="fuzzer").key
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        excluded_checks=[negative_data_rejection, positive_data_acceptance],
    )
