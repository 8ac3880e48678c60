"""Worklist data committed once per test module, so that the ``ris serve`` subprocess sees it and
many findscu queries run against the same steps without rebuilding them per test.

The tests that only talk DICOM to the server need no in-process database access; the data is
removed again when the module is done (the same flush a transactional test does).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from contextlib import contextmanager
from decimal import Decimal

from django.conf import settings
from django.core.management import call_command

from worklist import services
from worklist.audit import Actor
from worklist.models import Device, StepStatus

ACTOR = Actor.system("tests.mwl")
DAY = dt.date(2030, 3, 10)


def when(day_offset: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return dt.datetime.combine(
        DAY + dt.timedelta(days=day_offset), dt.time(hour, minute, second), zone
    )


def _number(text: str) -> int:
    return int.from_bytes(text.encode(), "big")


def device(ae_title: str, **fields) -> Device:
    obj, _ = Device.objects.update_or_create(ae_title=ae_title, defaults=fields)
    return obj


def schedule(
    *,
    sps_id: str,
    patient_id: str,
    name: str,
    station: str,
    start: dt.datetime,
    modality: str = "",
    status: str = StepStatus.SCHEDULED,
    accession: str = "",
    study_uid: str = "",
    patient: dict | None = None,
    order: dict | None = None,
    procedure: dict | None = None,
    step: dict | None = None,
    visit=None,
):
    """One step through the real services (patient_upsert + order_import)."""
    station_device = device(station, modality=modality or station[:2], station_name=station)
    patient_obj, _ = services.patient_upsert(
        patient_id=patient_id, issuer="HOSP", name=name, actor=ACTOR, **(patient or {})
    )
    entry = services.ImportedStep(
        accession_number=accession or f"ACC-{sps_id}",
        requested_procedure_id=f"RP-{sps_id}",
        sps_id=sps_id,
        study_instance_uid=study_uid or f"1.2.826.0.1.3680043.10.543.7.{_number(sps_id)}",
        scheduled_start=start,
        scheduled_end=None,
        station=station_device,
        status=status,
        order=order or {},
        procedure=procedure or {},
        step={"modality": modality or station[:2], **(step or {})},
    )
    created, _ = services.order_import(
        patient=patient_obj, entry=entry, actor=ACTOR, visit=visit
    )
    return created


@contextmanager
def committed(django_db_blocker):
    """Rows written inside are committed (visible to ``ris serve``) and flushed on exit."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            call_command("flush", interactive=False, verbosity=0)


#: The steps a default (universal) query returns: not canceled, not completed.
ACTIVE = {"A01", "A02", "A03", "A04", "A05", "A06", "A09", "A10", "A11"}


def uid(sps_id: str) -> str:
    return f"1.2.826.0.1.3680043.10.543.7.{_number(sps_id)}"


def standard_worklist() -> None:
    """Eleven steps over four days that exercise every matching rule (see tests/mwl)."""
    patient_a01, _ = services.patient_upsert(
        patient_id="PID-01", issuer="HOSP", name="Wang^XiaoDong=王^小东=wang^xiao dong",
        actor=ACTOR,
    )
    visit = services.visit_upsert(
        patient=patient_a01, admission_id="ADM-1", actor=ACTOR, assigned_location="Ward 3"
    )
    schedule(
        sps_id="A01", patient_id="PID-01", name="Wang^XiaoDong=王^小东=wang^xiao dong",
        station="CT1", start=when(0, 9), modality="CT", visit=visit,
        patient={
            "birth_date": dt.date(1980, 3, 12), "sex": "M", "weight_kg": Decimal("70.5"),
            "size_m": Decimal("1.75"), "allergies": "Iodine", "pregnancy_status": 4,
            "patient_state": "Ambulant", "special_needs": "Interpreter",
            "confidentiality": "VIP", "additional_history": "Migraine since 2020",
            "other_ids": [{"id": "SSN-9", "issuer": "STATE", "type": "TEXT"}],
        },
        order={
            "referring_physician": "Grey^Meredith", "requesting_physician": "Ross^Doug",
            "requesting_service": "Neuro", "placer_order_number": "PL-1",
            "filler_order_number": "FL-1", "reason": "Headache", "comments": "Fasting",
        },
        procedure={
            "description": "CT head", "code_value": "CTHEAD", "code_scheme": "L",
            "code_meaning": "CT head", "priority": "STAT", "transport_arrangements": "Wheelchair",
        },
        step={
            "performing_physician": "House^Gregory", "description": "CT head plain",
            "protocol_codes": [{"value": "P-HEAD", "scheme": "L", "meaning": "Head protocol"}],
            "location": "Room 1", "pre_medication": "None", "contrast_agent": "Iodine",
        },
    )
    schedule(sps_id="A02", patient_id="PID-02", name="Smith^John", station="CT1",
             start=when(0, 14, 30), modality="CT")
    schedule(sps_id="A03", patient_id="PID-03", name="Müller^Anna", station="MR1",
             start=when(1, 8, 15), modality="MR")
    schedule(sps_id="A04", patient_id="PID-04", name="smith^jane", station="MR1",
             start=when(1, 23), modality="MR")
    schedule(sps_id="A05", patient_id="PID-05", name="O'Brien_50%^Pat", station="US1",
             start=when(2, 6), modality="US")
    schedule(sps_id="A06", patient_id="PID-06", name="Li^Na=李^娜", station="US1",
             start=when(2, 10), modality="US", status=StepStatus.ARRIVED)
    schedule(sps_id="A07", patient_id="PID-07", name="Canceled^Case", station="CT1",
             start=when(0, 11), modality="CT", status=StepStatus.CANCELED)
    schedule(sps_id="A08", patient_id="PID-08", name="Done^Case", station="CT1",
             start=when(0, 12), modality="CT", status=StepStatus.COMPLETED)
    schedule(sps_id="A09", patient_id="PID-09", name="[B]racket^Test", station="CR1",
             start=when(0, 16), modality="CR")
    schedule(sps_id="A10", patient_id="PID-10", name="Brown^Bob", station="CR1",
             start=when(0, 16, 30), modality="CR", status=StepStatus.READY)
    schedule(sps_id="A11", patient_id="PID-11", name="Night^Owl", station="DX1",
             start=when(-1, 23, 30), modality="DX")
