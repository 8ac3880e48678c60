"""Model constraints give clear errors instead of silent duplicates."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tests.factories import DeviceFactory, PatientFactory
from worklist.models import Device, Patient

pytestmark = pytest.mark.django_db


def test_duplicate_ae_title_fails_validation_with_a_message():
    DeviceFactory(ae_title="CT1")
    with pytest.raises(ValidationError) as info:
        Device(ae_title="CT1").full_clean()
    assert "AE title already exists" in str(info.value)


def test_duplicate_ae_title_is_refused_by_the_database():
    DeviceFactory(ae_title="CT1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.create(ae_title="CT1")


def test_duplicate_patient_id_with_same_issuer_is_refused():
    PatientFactory(patient_id="P1", issuer="H")
    with pytest.raises(ValidationError) as info:
        Patient(patient_id="P1", issuer="H").full_clean()
    assert "already exists" in str(info.value)


def test_same_patient_id_under_another_issuer_is_another_patient():
    PatientFactory(patient_id="P1", issuer="H")
    PatientFactory(patient_id="P1", issuer="OTHER")
