"""FHIR R4 facade for a scheduling portal: Appointment (a booked step), Slot and Schedule (per
station), ImagingStudy (the gateway's and the PACS's counts) read and searched; a ServiceRequest
created (an order, with the HIS told as for an HL7 new order), an Appointment booked, moved,
cancelled and marked no-show through the front desk's services; refusals as OperationOutcome
with the domain error code. Every resource returned validates with fhir.resources; fhirclient
books against a running ris."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.slot import Slot
from rest_framework.authtoken.models import Token

from mpps.forwarding.models import StepImages
from ris.roles import Role
from tests.factories import (
    DeviceFactory,
    PatientFactory,
    ProcedureTypeFactory,
    at,
    first_step,
    make_order,
)
from worklist.models import AuditEvent, Order, StepStatus

pytestmark = pytest.mark.django_db
FHIR = "application/fhir+json"


def _tomorrow(hour: int) -> dt.datetime:
    day = timezone.localdate() + dt.timedelta(days=1)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hour)))


@pytest.fixture
def ct1():
    return DeviceFactory(ae_title="CT1", station_name="CT ROOM 1", modality="CT")


@pytest.fixture
def booked(ct1):
    patient = PatientFactory(patient_id="PF-1")
    order = make_order(patient=patient, station=ct1, start=at(9))
    return patient, order, first_step(order)


def _entries(response, model) -> list:
    assert response.status_code == 200, response.content
    bundle = Bundle.model_validate(response.json())
    return [model.model_validate(e.resource.model_dump()) for e in bundle.entry or []]


def test_an_appointment_is_a_booked_step_with_patient_station_and_slot(radiologist, booked, ct1):
    patient, order, step = booked
    appointment = Appointment.model_validate(radiologist.get(f"/fhir/Appointment/{step.pk}")
                                             .json())
    assert appointment.status == "booked"
    assert appointment.basedOn[0].reference == f"ServiceRequest/{step.requested_procedure_id}"
    actors = [p.actor for p in appointment.participant]
    assert actors[0].reference == f"Patient/{patient.pk}"
    assert actors[1].identifier.value == "CT1"
    assert appointment.slot[0].reference == f"Slot/{step.pk}"
    slot = Slot.model_validate(radiologist.get(f"/fhir/Slot/{step.pk}").json())
    assert (slot.status, slot.schedule.reference) == ("busy", f"Schedule/{ct1.pk}")
    schedule = Schedule.model_validate(radiologist.get(f"/fhir/Schedule/{ct1.pk}").json())
    assert schedule.actor[0].identifier.value == "CT1"


def test_appointments_are_searched_by_patient_date_status_and_station(radiologist, booked, ct1):
    patient, _, step = booked
    today = timezone.localdate().isoformat()
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    wanted = {"patient": f"Patient/{patient.pk}", "date": today, "status": "booked",
              "actor": "urn:ris:ae-title|CT1"}
    assert [a.id for a in _entries(radiologist.get("/fhir/Appointment", wanted),
                                   Appointment)] == [str(step.pk)]
    assert _entries(radiologist.get("/fhir/Appointment", {"date": tomorrow}), Appointment) == []
    ranged = radiologist.get(f"/fhir/Appointment?date=ge{today}&date=lt{tomorrow}")
    assert len(_entries(ranged, Appointment)) == 1
    assert len(_entries(radiologist.get("/fhir/Slot", {"schedule": f"Schedule/{ct1.pk}",
                                                       "start": today}), Slot)) == 1


def test_an_imaging_study_has_the_pacs_counts_once_confirmed(radiologist, booked):
    _, order, step = booked
    images = StepImages.objects.create(step=step, received_series=1, received_instances=10,
                                       last_received_at=timezone.now())
    study = ImagingStudy.model_validate(radiologist.get(f"/fhir/ImagingStudy/{images.pk}")
                                        .json())
    assert (study.status, study.numberOfSeries, study.numberOfInstances) == ("available", 1, 10)
    StepImages.objects.filter(pk=images.pk).update(
        pacs_destination="MAIN", pacs_series=2, pacs_instances=12, pacs_confirmed_at=timezone.now()
    )
    found = _entries(radiologist.get("/fhir/ImagingStudy",
                                     {"identifier": order.accession_number}), ImagingStudy)
    assert (found[0].numberOfSeries, found[0].numberOfInstances) == (2, 12)
    assert found[0].endpoint[0].display == "PACS MAIN"


def _new_order(patient, code: str, **more) -> dict:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{patient.pk}"},
            "code": {"coding": [{"system": "urn:ris:code-scheme:L", "code": code}]},
            "identifier": [{"system": "urn:ris:placer-order-number", "value": "PL-77"}],
            "priority": "urgent", **more}


def test_creating_a_service_request_makes_an_order_waiting_for_a_slot(desk):
    patient = PatientFactory(patient_id="PF-2")
    ProcedureTypeFactory(code_value="CTCHEST", code_meaning="CT chest", modality="CT")
    response = desk.post("/fhir/ServiceRequest", _new_order(patient, "CTCHEST"),
                         format="json")
    assert response.status_code == 201, response.content
    created = ServiceRequest.model_validate(response.json())
    assert response["Location"].endswith(f"/fhir/ServiceRequest/{created.id}")
    order = Order.objects.get(placer_order_number="PL-77")
    assert (order.source, order.priority, first_step(order).status) == (
        Order.Source.API, "HIGH", StepStatus.UNSCHEDULED)
    assert AuditEvent.objects.filter(action="order.create", object_id=str(order.pk)).exists()
    assert created.identifier[0].value == order.accession_number


def test_a_service_request_for_an_unknown_procedure_is_an_operation_outcome(desk):
    patient = PatientFactory(patient_id="PF-3")
    response = desk.post("/fhir/ServiceRequest", _new_order(patient, "NOPE"), format="json")
    assert response.status_code == 400
    outcome = OperationOutcome.model_validate(response.json())
    assert outcome.issue[0].details.coding[0].code == "unknown_procedure"


def test_an_invalid_resource_is_refused_before_ris_reads_it(desk):
    response = desk.post("/fhir/ServiceRequest", {"resourceType": "ServiceRequest"},
                         format="json")
    assert response.status_code == 400
    OperationOutcome.model_validate(response.json())


def test_a_radiologist_may_read_but_not_write(radiologist):
    response = radiologist.post("/fhir/ServiceRequest", {}, format="json")
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def _booking(service_request_id: int, start: dt.datetime, station: str = "CT1") -> dict:
    return {"resourceType": "Appointment", "status": "booked",
            "basedOn": [{"reference": f"ServiceRequest/{service_request_id}"}],
            "start": start.isoformat(), "end": (start + dt.timedelta(minutes=20)).isoformat(),
            "participant": [{"actor": {"identifier": {"system": "urn:ris:ae-title",
                                                      "value": station}},
                             "status": "accepted"}]}


def test_booking_moving_and_cancelling_an_appointment(desk, ct1):
    patient = PatientFactory(patient_id="PF-4")
    order = make_order(patient=patient)  # no start: waiting for the front desk
    rp = order.procedures.get()
    response = desk.post("/fhir/Appointment", _booking(rp.pk, _tomorrow(10)), format="json")
    assert response.status_code == 201, response.content
    appointment = Appointment.model_validate(response.json())
    step = first_step(order)
    assert (appointment.id, step.status, step.station) == (str(step.pk), StepStatus.SCHEDULED,
                                                            ct1)
    moved = {**response.json(), "start": _tomorrow(14).isoformat(),
             "end": (_tomorrow(14) + dt.timedelta(minutes=20)).isoformat()}
    assert desk.put(f"/fhir/Appointment/{step.pk}", moved, format="json").status_code == 200
    step.refresh_from_db()
    assert timezone.localtime(step.scheduled_start).hour == 14
    cancelled = {**moved, "status": "cancelled", "cancelationReason": {"text": "patient ill"}}
    response = desk.put(f"/fhir/Appointment/{step.pk}", cancelled, format="json")
    assert response.status_code == 200, response.content
    step.refresh_from_db()
    assert (step.status, step.status_reason) == (StepStatus.CANCELED, "patient ill")
    assert Appointment.model_validate(response.json()).status == "cancelled"


def test_a_booking_in_the_past_is_refused_with_the_domain_code(desk, ct1):
    order = make_order(patient=PatientFactory(patient_id="PF-5"))
    past = timezone.now() - dt.timedelta(days=2)
    response = desk.post("/fhir/Appointment", _booking(order.procedures.get().pk, past),
                         format="json")
    assert response.status_code == 409
    outcome = OperationOutcome.model_validate(response.json())
    assert (outcome.issue[0].code, outcome.issue[0].details.coding[0].code) == (
        "conflict", "in_the_past")


def test_a_no_show_is_reported_as_noshow(desk, booked):
    _, _, step = booked
    body = desk.get(f"/fhir/Appointment/{step.pk}").json()
    response = desk.put(f"/fhir/Appointment/{step.pk}", {**body, "status": "noshow"},
                        format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "noshow"


@pytest.mark.django_db(transaction=True)
def test_fhirclient_books_an_appointment_on_a_running_ris(ris_service, make_user, ct1):
    from fhirclient import client
    from fhirclient.models.appointment import Appointment as ClientAppointment

    order = make_order(patient=PatientFactory(patient_id="PF-6"))
    token = Token.objects.create(user=make_user("fhir-desk", Role.FRONT_DESK)).key
    smart = client.FHIRClient(settings={"app_id": "ris-test",
                                        "api_base": f"{ris_service.base_url}/fhir/"})
    smart.server.session.headers["Authorization"] = f"Token {token}"
    booking = ClientAppointment(_booking(order.procedures.get().pk, _tomorrow(11)))
    created = booking.create(smart.server)
    assert created["status"] == "booked"
    step = first_step(order)
    assert step.status == StepStatus.SCHEDULED
    found = ClientAppointment.where(struct={"actor": "urn:ris:ae-title|CT1"}).perform_resources(
        smart.server)
    assert [a.id for a in found] == [str(step.pk)]


def test_fhir_writes_tell_the_his_as_the_front_desk_would(desk, ct1):
    """The same services, so the same messages: a booking made over FHIR queues the HIS's
    status message, as a booking in the web UI does."""
    from ris.models import HL7Destination, OutboundJob

    HL7Destination.objects.create(name="HIS", host="his.example", port=2575)
    order = make_order(patient=PatientFactory(patient_id="PF-7"))
    before = OutboundJob.objects.count()
    response = desk.post("/fhir/Appointment", _booking(order.procedures.get().pk, _tomorrow(9)),
                         format="json")
    assert response.status_code == 201, response.content
    assert OutboundJob.objects.count() > before
    assert AuditEvent.objects.filter(action="step.book", actor__startswith="front").exists()
