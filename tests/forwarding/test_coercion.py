"""Coercion of a gateway instance to its order (no network: the mapping itself)."""

from __future__ import annotations

import io

import pytest
from pydicom import dcmread, dcmwrite

from mpps.forwarding import coercion
from tests.factories import PatientFactory, first_step, make_order
from tests.forwarding.instances import ct_study

pytestmark = pytest.mark.django_db


def roundtrip(ds):
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return dcmread(buffer)


def test_chinese_name_turns_a_latin1_instance_into_utf8_and_keeps_the_old_name():
    patient = PatientFactory(name_alphabetic="Wang^XiaoDong", name_ideographic="王^小东")
    step = first_step(make_order(patient=patient))
    (ds,) = ct_study(1, patient_name="Müller^Jürgen", charset="ISO_IR 100")

    coercion.coerce(ds, step, modifying_system="RIS", source="CT01")

    written = roundtrip(ds)
    assert written.SpecificCharacterSet == "ISO_IR 192"
    assert str(written.PatientName) == "Wang^XiaoDong=王^小东"
    modified = written.OriginalAttributesSequence[0].ModifiedAttributesSequence[0]
    assert str(modified.PatientName) == "Müller^Jürgen"


def test_empty_order_value_never_blanks_what_the_modality_sent():
    patient = PatientFactory(birth_date=None, sex="")
    step = first_step(make_order(patient=patient))
    (ds,) = ct_study(1)

    changes = coercion.coerce(ds, step, modifying_system="RIS", source="CT01")

    assert (ds.PatientBirthDate, ds.PatientSex) == ("19800101", "O")
    assert "PatientBirthDate" not in changes
    assert "PatientSex" not in changes


def test_instance_that_already_agrees_with_its_order_is_left_untouched():
    step = first_step(make_order())
    (ds,) = ct_study(1)
    coercion.coerce(ds, step, modifying_system="RIS", source="CT01")
    before = roundtrip(ds)

    changes = coercion.coerce(before, step, modifying_system="RIS", source="CT01")

    assert changes == {}
    assert len(before.OriginalAttributesSequence) == 1
