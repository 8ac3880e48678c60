"""factory-boy factories for the worklist domain; orders go through the real service."""

from __future__ import annotations

import datetime as dt

import factory
from django.utils import timezone

from worklist import services
from worklist.audit import Actor
from worklist.models import Device, Modality, Patient, ProcedureType
from worklist.services import ProcedureRequest


class DeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Device
        django_get_or_create = ("ae_title",)

    ae_title = factory.Sequence(lambda n: f"STATION{n}")
    modality = Modality.CT
    station_name = factory.LazyAttribute(lambda o: o.ae_title[:16])


class ProcedureTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProcedureType
        django_get_or_create = ("code_value", "code_scheme")

    code_value = factory.Sequence(lambda n: f"PROC{n}")
    code_scheme = "L"
    code_meaning = factory.LazyAttribute(lambda o: f"Procedure {o.code_value}")
    modality = Modality.CT
    default_duration_minutes = 15
    description = factory.LazyAttribute(lambda o: o.code_meaning)


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    patient_id = factory.Sequence(lambda n: f"PID{n:06d}")
    issuer = "HOSP"
    name_alphabetic = factory.Sequence(lambda n: f"Doe^John{n}")
    family_name = "Doe"
    birth_date = dt.date(1970, 1, 1)
    sex = "M"


def make_order(
    *,
    patient: Patient | None = None,
    procedure_type: ProcedureType | None = None,
    start: dt.datetime | None = None,
    station: Device | None = None,
    **order_fields,
):
    """An order with one scheduled step, created through ``services.order_create``."""
    patient = patient or PatientFactory()
    procedure_type = procedure_type or ProcedureTypeFactory()
    if start is None and station is not None:
        start = timezone.now().replace(microsecond=0)
    return services.order_create(
        patient=patient,
        procedures=[ProcedureRequest(procedure_type, scheduled_start=start, station=station)],
        actor=Actor.system("test"),
        **order_fields,
    )


def first_step(order):
    return order.procedures.get().steps.get()


def at(hours: int, minutes: int = 0, *, day: dt.date | None = None) -> dt.datetime:
    """A timezone-aware datetime today (or ``day``) in the department's zone."""
    day = day or timezone.localdate()
    return timezone.make_aware(dt.datetime.combine(day, dt.time(hours, minutes)))
