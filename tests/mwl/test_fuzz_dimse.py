"""Seeded fuzzing of the DICOM listener: mutated requests against a real
``ris serve --only dicom`` (worklist C-FIND identifiers, MPPS N-CREATE/N-SET, A-ASSOCIATE-RQ
PDUs on raw sockets; 2,000, or as ``RIS_FUZZ_DIMSE_COUNTS`` says). Every DIMSE
request gets a status (or, for a request ris cannot read, its association is aborted), every
raw PDU is answered or its connection closed, the listener never restarts or logs a traceback,
and answers a C-ECHO at the end. Counts are printed (``-s``). The seed comes from
``RIS_FUZZ_SEED``."""

from __future__ import annotations

import collections
import contextlib
import os
import random
import socket

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

from tests.mwl.conftest import committed, standard_worklist
from tests.mwl.test_settings import _wait_for_port
from tests.service import RisService
from tests.service import test_database_url as database_url

# Not inside a test transaction: on SQLite it would hold the write lock that the listener's
# audit rows (one per answered query) wait for.
pytestmark = pytest.mark.django_db(transaction=True)

SEED = int(os.environ.get("RIS_FUZZ_SEED", "20261204"))
#: Requests per kind (C-FIND, MPPS, raw A-ASSOCIATE-RQ): 2,000 unless RIS_FUZZ_DIMSE_COUNTS
#: says otherwise.
FINDS, MPPS, RAW = (
    int(n) for n in os.environ.get("RIS_FUZZ_DIMSE_COUNTS", "1000,600,400").split(",")
)

_VALUES = ["", "*", "?", "\\", "-", "A" * 70, "A" * 5000, "20261301", "2026-12-01", "20261201-",
           "-20261201", "2026120", "99999999-00000000", "王^小东", "Wang^^^^^^", "=", "^=^",
           "\x1b$)A", "\x00", "1.2.3.04", "1." * 40, "CT\\MR\\", "25:61", "*?*?*", "0"]
_MWL_KEYS = ["PatientName", "PatientID", "AccessionNumber", "PatientBirthDate", "PatientSex",
             "StudyInstanceUID", "RequestedProcedureID", "IssuerOfPatientID",
             "ReferringPhysicianName", "AdmissionID", "SpecificCharacterSet"]
_SPS_KEYS = ["ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
             "ScheduledProcedureStepStartTime", "Modality", "ScheduledPerformingPhysicianName",
             "ScheduledProcedureStepID", "ScheduledProcedureStepStatus",
             "ScheduledProcedureStepDescription"]


@pytest.fixture(scope="module")
def service(django_db_setup, django_db_blocker, tmp_path_factory):
    with committed(django_db_blocker):
        standard_worklist()
        # The default per-address limit (32) stays: hundreds of aborted associations from this
        # one client in a row must not lock its address out of the closing C-ECHO.
        ris = RisService(data_dir=tmp_path_factory.mktemp("ris-fuzz"),
                         database_url=database_url())
        ris.start("--only", "dicom")
        try:
            _wait_for_port(ris)
            yield ris
        finally:
            ris.stop(timeout=60)


def _identifier(rng: random.Random) -> Dataset:
    ds = Dataset()
    for key in rng.sample(_MWL_KEYS, rng.randint(0, len(_MWL_KEYS))):
        try:
            setattr(ds, key, rng.choice(_VALUES))
        except (ValueError, TypeError, OverflowError):
            pass
    if rng.random() < 0.8:
        items = []
        for _ in range(rng.choice([0, 1, 1, 1, 2])):
            item = Dataset()
            for key in rng.sample(_SPS_KEYS, rng.randint(0, len(_SPS_KEYS))):
                try:
                    setattr(item, key, rng.choice(_VALUES))
                except (ValueError, TypeError, OverflowError):
                    pass
            items.append(item)
        ds.ScheduledProcedureStepSequence = items
    return ds


def _pps(rng: random.Random) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = rng.choice(["IN PROGRESS", "COMPLETED", "", "BOGUS"])
    for key in rng.sample(["PatientName", "PatientID", "PerformedStationAETitle",
                           "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime",
                           "PerformedProcedureStepID", "Modality", "StudyID",
                           "PerformedProcedureStepEndDate"], rng.randint(0, 9)):
        try:
            setattr(ds, key, rng.choice(_VALUES))
        except (ValueError, TypeError, OverflowError):
            pass
    if rng.random() < 0.5:
        step = Dataset()
        step.StudyInstanceUID = rng.choice([generate_uid(), "1.2.3.04", "", "x" * 70])
        step.ScheduledProcedureStepID = rng.choice(["A01", "", "NOPE"])
        step.AccessionNumber = rng.choice(_VALUES[:12])
        ds.ScheduledStepAttributesSequence = [step]
    if rng.random() < 0.3:
        ds.PerformedSeriesSequence = [Dataset()]
    return ds


def _encodable(make, rng: random.Random) -> Dataset:
    """A mutated dataset that pydicom can write (the SCU side refuses some, e.g. a NUL in a
    PN): the fuzzing is of what reaches ris, not of the client."""
    import logging

    from pynetdicom.dsutils import encode

    quiet = logging.getLogger("pynetdicom")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        while True:
            ds = make(rng)
            try:
                # An empty dataset is left out: pynetdicom's SCU announces a data set for it
                # (CommandDataSetType 0x0001) and then sends none, so the request never ends
                # on the wire and ris, rightly, waits for the rest (the SCU then aborts).
                if encode(ds, False, True):
                    return ds
            except Exception:  # noqa: BLE001, S112 - not encodable: make another
                continue
    finally:
        quiet.setLevel(level)


def _association(ris: RisService):
    ae = AE(ae_title="FUZZ")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.add_requested_context(ModalityPerformedProcedureStep)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    assoc = ae.associate("127.0.0.1", ris.dicom_port, ae_title="RIS")
    assert assoc.is_established
    return assoc


def _valid_request() -> bytes:
    """A real A-ASSOCIATE-RQ, as pynetdicom writes it (read off a socket of ours)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    ae = AE(ae_title="FUZZ")
    ae.add_requested_context(Verification)
    ae.acse_timeout = 1
    import threading

    thread = threading.Thread(
        target=lambda: ae.associate("127.0.0.1", server.getsockname()[1], ae_title="RIS"),
        daemon=True)
    thread.start()
    conn, _ = server.accept()
    conn.settimeout(5)
    data = b""
    while len(data) < 6 or len(data) < 6 + int.from_bytes(data[2:6], "big"):
        data += conn.recv(65536)
    conn.close()
    server.close()
    thread.join(5)
    return data


def test_mutated_requests_never_break_the_listener(service):
    ris = service
    rng = random.Random(SEED)
    statuses: collections.Counter[str] = collections.Counter()

    unanswered: list[str] = []
    assoc = _association(ris)
    for _ in range(FINDS):
        if not assoc.is_established:
            statuses["association aborted by ris"] += 1
            assoc = _association(ris)
        final = None
        identifier = _encodable(_identifier, rng)
        for status, _ in assoc.send_c_find(identifier, ModalityWorklistInformationFind):
            final = status
        code = getattr(final, "Status", None)
        if code is None:
            unanswered.append(repr(identifier)[:400])
        statuses["C-FIND " + ("no response" if code is None else f"0x{code:04X}")] += 1
    for n in range(MPPS):
        if not assoc.is_established:
            statuses["association aborted by ris"] += 1
            assoc = _association(ris)
        if n % 3 == 2:
            status, _ = assoc.send_n_set(_encodable(_pps, rng), ModalityPerformedProcedureStep,
                                         rng.choice([generate_uid(), "1.2.3.04"]))
            kind = "N-SET"
        else:
            status, _ = assoc.send_n_create(_encodable(_pps, rng), ModalityPerformedProcedureStep,
                                            rng.choice([generate_uid(), generate_uid(), None]))
            kind = "N-CREATE"
        code = getattr(status, "Status", None)
        statuses[f"{kind} " + ("no response" if code is None else f"0x{code:04X}")] += 1
    assoc.release()

    request = _valid_request()
    for _ in range(RAW):
        pdu = bytearray(request)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(pdu))
            pdu[position] = rng.randrange(256)
        if rng.random() < 0.2:
            pdu = pdu[: rng.randrange(len(pdu))]
        with socket.create_connection(("127.0.0.1", ris.dicom_port), timeout=30) as sock:
            sock.sendall(bytes(pdu))
            if len(pdu) < 6 or 6 + int.from_bytes(pdu[2:6], "big") > len(pdu):
                # Cut short, or its length field raised: the peer hangs up its side, so that
                # ris need not wait for the rest until its first-PDU timeout (5 s, tested in
                # test_connection_limits).
                with contextlib.suppress(OSError):  # ris may have closed first
                    sock.shutdown(socket.SHUT_WR)
            try:
                reply = sock.recv(16)
            except TimeoutError:
                reply = None
        statuses["raw PDU " + ("timeout" if reply is None else "closed" if not reply
                               else f"answered 0x{reply[0]:02X}")] += 1

    print(f"\nDICOM fuzz (seed {SEED}): {FINDS} C-FIND, {MPPS} MPPS, {RAW} raw A-ASSOCIATE-RQ: "
          f"{dict(sorted(statuses.items()))}")
    for text in unanswered:
        print(f"  C-FIND without a response (association aborted): {text}")
    # A request ris cannot read may cost its association (A-ABORT), never the listener.
    no_response = sum(v for k, v in statuses.items() if k.endswith("no response"))
    assert no_response <= statuses["association aborted by ris"] + 1
    assert not any(key.endswith("timeout") for key in statuses)
    assert sum(v for k, v in statuses.items() if not k.startswith("association")) == \
        FINDS + MPPS + RAW

    echo = _association(ris)
    assert echo.send_c_echo().Status == 0x0000
    echo.release()
    log = ris.log()
    assert "Traceback" not in log
    assert "exited with" not in log  # the supervisor never restarted the listener
