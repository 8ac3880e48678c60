"""Fixtures for MPPS tests: a modality SCU pointed at the session's ``ris serve``."""

from __future__ import annotations

import pytest

from tests.factories import DeviceFactory, first_step, make_order
from tests.mpps.modality import Modality


@pytest.fixture
def modality(ris_service) -> Modality:
    return Modality(port=ris_service.dicom_port, called_ae=ris_service.ae_title)


@pytest.fixture
def ct_station():
    return DeviceFactory(ae_title="CT01")


@pytest.fixture
def scheduled_step(ct_station):
    """A SCHEDULED step on CT01, as on the worklist the modality just queried."""
    return first_step(make_order(station=ct_station))
