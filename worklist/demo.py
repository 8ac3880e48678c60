"""Demo data for a newcomer: a catalogue, stations, patients and today's orders.

Idempotent: running it twice does not duplicate the catalogue, stations or patients, and orders
are only added for patients that have none today.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from worklist import services
from worklist.audit import Actor
from worklist.catalog import import_catalog
from worklist.models import CharacterSet, Device, Patient, ProcedureType
from worklist.services import ProcedureRequest

CATALOG = """code,scheme,meaning,modality,duration_minutes,stations
CTHEAD,L,CT head without contrast,CT,15,CT1 CT2
CTCHEST,L,CT chest with contrast,CT,20,CT1 CT2
MRBRAIN,L,MR brain,MR,40,MR1
MRKNEE,L,MR knee,MR,30,MR1
USABD,L,US abdomen,US,20,US1
CRCHEST,L,Chest X-ray PA and lateral,CR,10,CR1
DXHAND,L,Hand X-ray,DX,10,DX1
"""

PATIENTS = [
    ("P0001", "Wang^XiaoDong=王^小东=wang^xiao dong", "19800312", "M"),
    ("P0002", "Li^Na=李^娜", "19920704", "F"),
    ("P0003", "Zhang^Wei=张^伟", "19651120", "M"),
    ("P0004", "Smith^John", "19740101", "M"),
    ("P0005", "Müller^Anna", "19881009", "F"),
    ("P0006", "Chen^Jing=陈^静", "20010215", "F"),
]

SCHEDULE = [
    ("P0001", "CTHEAD", "CT1", dt.time(8, 0)),
    ("P0002", "MRBRAIN", "MR1", dt.time(8, 30)),
    ("P0003", "CTCHEST", "CT1", dt.time(9, 0)),
    ("P0004", "USABD", "US1", dt.time(9, 30)),
    ("P0005", "CRCHEST", "CR1", dt.time(10, 0)),
    ("P0006", "DXHAND", "DX1", dt.time(10, 30)),
    ("P0001", "MRKNEE", "MR1", dt.time(14, 0)),
    ("P0003", "CTHEAD", None, None),  # unscheduled: waiting for the front desk
]


@transaction.atomic
def load_demo() -> dict[str, int]:
    actor = Actor.system("demo")
    import_catalog(CATALOG, actor=actor)
    Device.objects.filter(ae_title__in=["CT1", "CT2"]).update(
        station_name="CT-ROOM1", location="CT ROOM 1", character_set=CharacterSet.UTF8
    )
    Device.objects.get_or_create(
        ae_title="PACS", defaults={"kind": Device.Kind.PACS, "host": "127.0.0.1", "port": 4242,
                                   "may_query_worklist": False},
    )
    patients = {}
    for patient_id, name, birth, sex in PATIENTS:
        patients[patient_id], _ = services.patient_upsert(
            patient_id=patient_id,
            issuer="DEMO",
            name=name,
            actor=actor,
            birth_date=dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:])),
            sex=sex,
        )
    today = timezone.localdate()
    created = 0
    for patient_id, code, station_title, at in SCHEDULE:
        patient = patients[patient_id]
        ptype = ProcedureType.objects.get(code_value=code)
        if patient.orders.filter(
            procedures__procedure_type=ptype, created_at__date__gte=today
        ).exists():
            continue
        start = (
            timezone.make_aware(dt.datetime.combine(today, at)) if at is not None else None
        )
        station = Device.objects.get(ae_title=station_title) if station_title else None
        services.order_create(
            patient=patient,
            procedures=[ProcedureRequest(ptype, scheduled_start=start, station=station)],
            actor=actor,
            requesting_physician="Zhou^Min=周^敏",
        )
        created += 1
    return {"patients": Patient.objects.count(), "orders_created": created}
