"""Station routing rules: a step without a station is never served as scheduled.

The catalogue's USABD names no station. Orders for it arrive over MLLP (the hl7 package's client)
at a real ``ris serve``; the rules are rows an administrator edits, read by the service.
"""

from __future__ import annotations

import time

import pytest

from tests.factories import first_step
from tests.hl7.conftest import read_ack, send
from worklist import routing
from worklist.models import (
    Device,
    ModalityDefaultStation,
    Order,
    StationRule,
    StepStatus,
)

pytestmark = pytest.mark.django_db(transaction=True)


def order_message(
    control_id: str,
    placer: str,
    *,
    code: str = "USABD",
    patient_class: str = "O",
    location: str = "RAD",
    priority: str = "R",
    department: str = "",
    obr24: str = "",
) -> bytes:
    obr = f"OBR|1|{placer}^HIS||{code}^{code}^L" + ("|" * 20 + obr24 if obr24 else "")
    segments = [
        f"MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||OMG^O19^OMG_O19|{control_id}|P|2.5.1",
        "PID|1||P-R1^^^HOSP^MR||Doe^Jane||19700101|F",
        f"PV1|1|{patient_class}|{location}",
        f"ORC|NW|{placer}^HIS" + ("|" * 15 + department if department else ""),
        f"TQ1|1||||||202612011000||{priority}",
        obr,
    ]
    return ("\r".join(segments) + "\r").encode()


def station_of(placer: str) -> tuple[str, str | None]:
    step = first_step(Order.objects.get(placer_order_number=placer))
    return step.status, step.station.ae_title if step.station else None


@pytest.fixture
def us_rooms(catalogue):
    """Two ultrasound rooms; the service's rule cache must not remember an earlier test's rules."""
    rooms = (
        Device.objects.create(ae_title="US1", modality="US", allow_overbooking=True),
        Device.objects.create(ae_title="US2", modality="US", allow_overbooking=True),
    )
    time.sleep(routing.CACHE_SECONDS)
    return rooms


def deliver(service, raw: bytes):
    return read_ack(send(service.mllp_port, raw))


def test_timed_step_without_station_and_without_rule_stays_unscheduled(hl7_service, catalogue):
    assert deliver(hl7_service, order_message("R-1", "PL-R1")).code == "AA"

    assert station_of("PL-R1") == (StepStatus.UNSCHEDULED, None)
    assert Order.objects.get().status == "SC"  # an order waiting to be booked


def test_rules_are_tried_in_order_and_the_first_match_wins(hl7_service, us_rooms):
    us1, us2 = us_rooms
    StationRule.objects.create(position=1, patient_class="I", station=us2)
    StationRule.objects.create(position=2, modality="US", station=us1)
    StationRule.objects.create(position=3, patient_class="I", station=us1)

    deliver(hl7_service, order_message("R-2", "PL-R2", patient_class="I"))
    deliver(hl7_service, order_message("R-3", "PL-R3", patient_class="O"))

    assert station_of("PL-R2") == (StepStatus.SCHEDULED, "US2")
    assert station_of("PL-R3") == (StepStatus.SCHEDULED, "US1")


@pytest.mark.parametrize(
    ("rule", "message", "expected"),
    [
        ({"procedure_code": "USABD"}, {}, "US2"),
        ({"procedure_code": "USABD"}, {"code": "CTHEAD"}, "CT1"),  # the catalogue's station
        ({"priority": "STAT"}, {"priority": "S"}, "US2"),
        ({"priority": "STAT"}, {}, None),
        ({"department": "ER"}, {"department": "ER"}, "US2"),
        ({"location": "W1"}, {"location": "W1^12^B"}, "US2"),
        ({"location": "W1"}, {"location": "W2^12^B"}, None),
        ({"modality": "MR"}, {"obr24": "MR"}, "US2"),
    ],
)
def test_each_criterion_chooses_the_station(hl7_service, us_rooms, rule, message, expected):
    StationRule.objects.create(position=1, station=us_rooms[1], **rule)

    assert deliver(hl7_service, order_message("R-4", "PL-R4", **message)).code == "AA"

    status, station = station_of("PL-R4")
    assert station == expected
    assert status == (StepStatus.SCHEDULED if expected else StepStatus.UNSCHEDULED)


def test_modality_default_applies_when_no_rule_matches(hl7_service, us_rooms):
    StationRule.objects.create(position=1, patient_class="E", station=us_rooms[1])
    ModalityDefaultStation.objects.create(modality="US", station=us_rooms[0])

    deliver(hl7_service, order_message("R-5", "PL-R5"))

    assert station_of("PL-R5") == (StepStatus.SCHEDULED, "US1")


def test_inactive_rule_or_station_is_skipped(hl7_service, us_rooms):
    us1, us2 = us_rooms
    StationRule.objects.create(position=1, station=us2, active=False)
    StationRule.objects.create(position=2, station=us1)
    us1.active = False
    us1.save()
    time.sleep(routing.CACHE_SECONDS)

    deliver(hl7_service, order_message("R-6", "PL-R6"))

    assert station_of("PL-R6") == (StepStatus.UNSCHEDULED, None)
