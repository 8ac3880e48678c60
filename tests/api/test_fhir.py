"""FHIR R4 facade, reads: Patient, ServiceRequest, Task and the CapabilityStatement (Appointment,
Slot, Schedule, ImagingStudy and the writes are in test_fhir_scheduling.py); every resource
returned validates with fhir.resources, and fhirclient (the SMART on FHIR client, written
elsewhere) reads and searches them from a running ris serve."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from rest_framework.authtoken.models import Token

from ris.roles import Role
from tests.factories import DeviceFactory, PatientFactory, at, first_step, make_order
from worklist import services
from worklist.audit import Actor

pytestmark = pytest.mark.django_db


@pytest.fixture
def booked():
    wang = PatientFactory(patient_id="PW-1", name_alphabetic="Wang^XiaoDong",
                          name_ideographic="王^小东", sex="M")
    order = make_order(patient=wang, station=DeviceFactory(ae_title="CT1"), start=at(9))
    return wang, order, first_step(order)


def test_patient_read_is_a_valid_fhir_patient(radiologist, booked):
    wang, _, _ = booked
    response = radiologist.get(f"/fhir/Patient/{wang.pk}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    patient = FhirPatient.model_validate(response.json())
    assert patient.identifier[0].value == "PW-1"
    assert patient.name[0].family == "Wang" and patient.name[1].family == "王"
    assert patient.gender == "male"
    from worklist.models import AuditEvent

    read = AuditEvent.objects.get(action="patient.read", object_id=str(wang.pk))
    assert read.detail == "fhir"


def test_service_request_carries_the_accession_and_the_patient(radiologist, booked):
    wang, order, _ = booked
    bundle = Bundle.model_validate(
        radiologist.get("/fhir/ServiceRequest", {"patient": f"Patient/{wang.pk}"}).json()
    )
    assert bundle.total == 1
    request = ServiceRequest.model_validate(bundle.entry[0].resource.model_dump())
    assert request.identifier[0].value == order.accession_number
    assert request.subject.reference == f"Patient/{wang.pk}"
    assert request.status == "active" and request.intent == "order"


def test_a_task_follows_its_step_through_the_state_machine(radiologist, booked):
    _, _, step = booked
    task = Task.model_validate(radiologist.get(f"/fhir/Task/{step.pk}").json())
    assert task.status == "accepted" and task.owner.display == "CT1"
    services.step_transition(step=step, to="CANCELED", actor=Actor.system("t"), reason="no show")
    task = Task.model_validate(radiologist.get(f"/fhir/Task/{step.pk}").json())
    assert (task.status, task.statusReason.text) == ("cancelled", "no show")
    found = radiologist.get("/fhir/Task", {"status": "cancelled", "owner": "CT1"}).json()
    assert found["total"] == 1


def test_search_pages_with_count_and_next_links(radiologist):
    for n in range(3):
        PatientFactory(patient_id=f"PG-{n}")
    first = radiologist.get("/fhir/Patient", {"_count": 2}).json()
    Bundle.model_validate(first)
    assert first["total"] == 3 and len(first["entry"]) == 2
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = radiologist.get(next_url.replace("http://testserver", "")).json()
    assert len(second["entry"]) == 1


def test_errors_are_operation_outcomes(radiologist, anonymous):
    missing = radiologist.get("/fhir/Patient/999999")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    assert radiologist.get("/fhir/Patient", {"nonsense": "1"}).status_code == 400
    assert radiologist.get("/fhir/Observation").status_code == 404
    assert anonymous.get("/fhir/Patient").status_code == 401


def test_the_capability_statement_lists_the_served_resources(radiologist):
    statement = CapabilityStatement.model_validate(radiologist.get("/fhir/metadata").json())
    assert statement.fhirVersion == "4.0.1"
    served = {r.type: {i.code for i in r.interaction} for r in statement.rest[0].resource}
    assert set(served) == {"Patient", "ServiceRequest", "Appointment", "Slot", "Schedule",
                           "ImagingStudy", "Task"}
    assert served["Appointment"] == {"read", "search-type", "create", "update"}
    assert served["ServiceRequest"] == {"read", "search-type", "create"}


@pytest.mark.django_db(transaction=True)
def test_fhirclient_reads_and_searches_a_running_ris(ris_service, make_user, booked):
    from fhirclient import client
    from fhirclient.models.patient import Patient as ClientPatient
    from fhirclient.models.task import Task as ClientTask

    wang, _, step = booked
    token = Token.objects.create(user=make_user("fhir-reader", Role.RADIOLOGIST)).key
    smart = client.FHIRClient(settings={"app_id": "ris-test",
                                        "api_base": f"{ris_service.base_url}/fhir/"})
    smart.server.session.headers["Authorization"] = f"Token {token}"
    patient = ClientPatient.read(str(wang.pk), smart.server)
    assert patient.identifier[0].value == "PW-1"
    tasks = ClientTask.where(struct={"patient": str(wang.pk)}).perform_resources(smart.server)
    assert [t.identifier[0].value for t in tasks] == [step.sps_id]
    assert tasks[0].status == "accepted"
