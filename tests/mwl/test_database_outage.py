"""A C-FIND during a database outage (PostgreSQL, real ``ris serve`` and findscu): an explicit
failure status with the Error Comment "database unavailable", one log line for the outage and
one for the recovery, no traceback per request."""

from __future__ import annotations

import time

import pytest

from tests.mwl.dcmtk import findscu
from tests.mwl.test_settings import _wait_for_port
from tests.pg import cut_off, database_name, restore, scratch_database
from tests.service import RisService

pytestmark = [pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with scratch_database() as url:
        ris = RisService(data_dir=tmp_path_factory.mktemp("ris-outage"), database_url=url,
                         extra_env={"RIS_DICOM_DB_THREADS": "2"})
        ris.start("--only", "dicom")
        try:
            _wait_for_port(ris)
            yield ris
        finally:
            ris.stop(timeout=60)


def test_c_find_during_an_outage_is_refused_with_database_unavailable(service):
    name = database_name(service.database_url)
    assert findscu(service.dicom_port, ["PatientID="]).final == "Success"
    cut_off(name)
    try:
        answers = [findscu(service.dicom_port, ["PatientID="], extra=["-d"]) for _ in range(5)]
    finally:
        restore(name)
    for result in answers:
        assert result.responses == []
        assert "0xc001" in result.output.lower(), result.output
        assert "database unavailable" in result.output, result.output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if findscu(service.dicom_port, ["PatientID="]).final == "Success":
            break
        time.sleep(0.5)
    else:
        pytest.fail("the worklist did not come back after the outage")
    log = service.log()
    assert log.count("database unavailable (") == 1, log
    assert log.count("database available again") == 1, log
    assert "Traceback" not in log, log
