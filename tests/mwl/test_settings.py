"""The SCP's settings, on a dedicated ``ris serve --only dicom`` started with them:
RIS_DICOM_REQUIRE_KNOWN_AE, RIS_MWL_MAX_MATCHES and RIS_MWL_PN_CASE_INSENSITIVE=0."""

from __future__ import annotations

import socket
import time

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

from tests.mwl.conftest import committed, device, standard_worklist
from tests.mwl.dcmtk import findscu, sps
from tests.service import RisService
from tests.service import test_database_url as database_url

pytestmark = [pytest.mark.dcmtk]


def _wait_for_port(service: RisService, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(service.log())
        try:
            with socket.create_connection(("127.0.0.1", service.dicom_port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(service.log())


@pytest.fixture(scope="module")
def port(django_db_setup, django_db_blocker, tmp_path_factory):
    with committed(django_db_blocker):
        standard_worklist()
        device("KNOWNSCU")
        service = RisService(
            data_dir=tmp_path_factory.mktemp("ris-strict"),
            database_url=database_url(),
            extra_env={
                "RIS_DICOM_REQUIRE_KNOWN_AE": "1",
                "RIS_MWL_MAX_MATCHES": "3",
                "RIS_MWL_PN_CASE_INSENSITIVE": "0",
            },
        )
        service.start("--only", "dicom")
        try:
            _wait_for_port(service)
            yield service.dicom_port
        finally:
            service.stop(timeout=60)


def test_an_unknown_calling_ae_title_is_rejected_with_the_proper_reason(port):
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="RIS")
    assert assoc.is_rejected
    rejection = assoc.acceptor.primitive
    # rejected-permanent, by the service user, calling AE title not recognised (PS3.8 9.3.4)
    assert (rejection.result, rejection.result_source, rejection.diagnostic) == (1, 1, 3)


def test_findscu_from_an_unknown_ae_is_rejected(port):
    result = findscu(port, ["PatientID="], calling_ae="STRANGER")
    assert "Association Rejected" in result.output
    assert result.responses == []


def test_a_known_device_is_accepted(port):
    result = findscu(port, ["PatientID=PID-02"], calling_ae="KNOWNSCU")
    assert result.final == "Success" and result.patient_ids == ["PID-02"]


def test_more_matches_than_the_maximum_are_refused_out_of_resources(port):
    result = findscu(port, ["PatientID="], calling_ae="KNOWNSCU")
    assert result.responses == []
    assert "OutOfResources" in result.final or "0xa700" in result.final.lower(), result.output


def test_a_query_within_the_maximum_is_answered(port):
    result = findscu(port, sps(ScheduledStationAETitle="MR1", ScheduledProcedureStepID=""),
                     calling_ae="KNOWNSCU")
    assert result.sps_ids == {"A03", "A04"}


def test_person_names_match_case_sensitively_when_configured(port):
    keys = ["SpecificCharacterSet=ISO_IR 192", "PatientName=Smith*", "PatientID="]
    assert findscu(port, keys, calling_ae="KNOWNSCU").patient_ids == ["PID-02"]
