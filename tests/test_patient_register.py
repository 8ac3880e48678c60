"""Registering a patient at the front desk: generated patient IDs and the duplicate check."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.factories import PatientFactory
from worklist import identifiers, selectors, services
from worklist.audit import Actor
from worklist.errors import Duplicate
from worklist.models import AuditEvent
from worklist.pn import PersonName

DESK = Actor.system("desk")


@pytest.mark.django_db
def test_an_empty_patient_id_is_drawn_from_the_pattern(settings):
    settings.RIS_PATIENT_ID_PATTERN = "RIS-{counter:05d}"
    first = services.patient_register(name="Li^Na", actor=DESK)
    second = services.patient_register(name="Zhao^Lei", actor=DESK)
    assert first.patient_id.startswith("RIS-") and len(first.patient_id) == 9
    assert int(second.patient_id[4:]) == int(first.patient_id[4:]) + 1
    assert AuditEvent.objects.filter(action="patient.create").count() == 2


@pytest.mark.django_db
def test_a_generated_id_skips_one_typed_by_hand(settings):
    settings.RIS_PATIENT_ID_PATTERN = "P{counter:03d}"
    upcoming = identifiers.patient_id(identifiers.next_value("patient_id") + 1)
    services.patient_register(name="Typed^ByHand", patient_id=upcoming, actor=DESK)
    generated = services.patient_register(name="Next^One", actor=DESK)
    assert generated.patient_id != upcoming


@pytest.mark.django_db
def test_registering_a_typed_id_that_exists_is_refused():
    PatientFactory(patient_id="P1", issuer="HOSP")
    with pytest.raises(Duplicate):
        services.patient_register(name="Li^Na", patient_id="P1", issuer="HOSP", actor=DESK)


@pytest.mark.parametrize("pattern", ["P", "P{number}", "{counter:0200d}"])
def test_a_pattern_without_a_usable_counter_field_is_a_configuration_error(pattern):
    with pytest.raises(ValueError, match="RIS_PATIENT_ID_PATTERN"):
        identifiers.patient_id(1, pattern)


@pytest.mark.django_db
def test_same_name_and_birth_date_is_a_possible_duplicate_in_any_name_group():
    same = PatientFactory(
        name_alphabetic="Wang^XiaoDong", name_ideographic="王^小东", birth_date=dt.date(1980, 3, 12)
    )
    PatientFactory(name_alphabetic="Wang^XiaoDong", birth_date=dt.date(1981, 3, 12))
    PatientFactory(name_alphabetic="Wang^Lei", birth_date=dt.date(1980, 3, 12))
    assert selectors.possible_duplicates(
        name=PersonName("WANG^xiaodong"), birth_date=dt.date(1980, 3, 12)
    ) == [same]
    assert selectors.possible_duplicates(
        name=PersonName("", "王^小东"), birth_date=dt.date(1980, 3, 12)
    ) == [same]
    assert selectors.possible_duplicates(name=PersonName("Wang^XiaoDong"), birth_date=None) == []


def test_every_error_code_is_mapped_by_every_interface():
    """HTTP status, HL7 ERR condition and the web's translated sentence: no silent fallback."""
    from api.exceptions import DOMAIN_STATUS
    from ris.hl7.ack import ERROR_CODES
    from web import errors as web_errors
    from worklist.errors import ErrorCode

    assert set(DOMAIN_STATUS) == set(ErrorCode)
    assert set(ERROR_CODES) == {str(code) for code in ErrorCode}
    for code in ErrorCode:
        assert web_errors._generic(code)
