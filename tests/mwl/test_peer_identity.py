"""A device authenticated by its TLS client certificate, not only by the AE title it claims
(Device.certificate_subject), and what each device may do on the ris AE (may_query_worklist,
may_send_mpps, may_store). Real peers: DCMTK's findscu/echoscu ``+tls`` and pynetdicom SCUs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from django.db import connections
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from tests.forwarding.instances import ct_study
from tests.mwl.conftest import committed, standard_worklist
from tests.mwl.dcmtk import tool
from tests.mwl.test_settings import _wait_for_port
from tests.pki import make_ca, make_certificate
from tests.service import RisService, free_port
from tests.service import test_database_url as database_url
from worklist.models import AuditEvent, Device

pytestmark = [pytest.mark.dcmtk, pytest.mark.django_db]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("pki-identity")
    make_ca(directory)
    make_certificate(directory, "server", "/CN=localhost")
    make_certificate(directory, "ct1", "/CN=CT1/O=Radiology")
    make_certificate(directory, "other", "/CN=Workstation 7/O=Radiology")
    return directory


@pytest.fixture(scope="module")
def service(django_db_setup, django_db_blocker, tmp_path_factory, pki):
    with committed(django_db_blocker):
        standard_worklist()
        Device.objects.filter(ae_title="CT1").update(certificate_subject="cn=CT1, o=Radiology")
        Device.objects.create(ae_title="VIEWER", modality="OT", may_send_mpps=False,
                              may_store=False)
        ris = RisService(
            data_dir=tmp_path_factory.mktemp("ris-identity"),
            database_url=database_url(),
            extra_env={
                "RIS_DICOM_TLS_PORT": str(free_port()),
                "RIS_DICOM_TLS_CERT": str(pki / "server.crt"),
                "RIS_DICOM_TLS_KEY": str(pki / "server.key"),
                "RIS_DICOM_TLS_CA": str(pki / "ca.crt"),
                "RIS_DICOM_REQUIRE_CALLED_AE": "1",
            },
        )
        ris.start("--only", "dicom")
        try:
            _wait_for_port(ris)
            port = int(ris.extra_env["RIS_DICOM_TLS_PORT"])
            deadline = time.monotonic() + 60
            while "dicom TLS" not in ris.log() and time.monotonic() < deadline:
                time.sleep(0.2)
            yield ris, port
        finally:
            ris.stop(timeout=60)


def _committed_audit(action: str) -> list[tuple[str, str]]:
    """Audit rows the service committed, read on a connection of their own (the test's
    transaction began before the service wrote them)."""
    real = connections["default"]
    conn = type(real)(dict(real.settings_dict), "default")
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT actor, detail FROM {AuditEvent._meta.db_table} "
                           "WHERE action = %s", [action])
            return list(cursor.fetchall())
    finally:
        conn.close()


def _findscu(port: int, pki: Path, aet: str, key: str | None, aec: str = "RIS") -> str:
    tls = ["+tls", str(pki / f"{key}.key"), str(pki / f"{key}.crt"), "+cf",
           str(pki / "ca.crt")] if key else []
    command = [tool("findscu"), "-v", "-aet", aet, "-aec", aec, *tls, "-W", "-k",
               "PatientID=PID-02", "-k", "PatientName", "127.0.0.1", str(port)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr + f"\nexit {result.returncode}"


def test_a_device_with_its_certificate_gets_its_worklist(service, pki):
    _, tls_port = service
    output = _findscu(tls_port, pki, "CT1", "ct1")
    assert "Received Final Find Response (Success)" in output, output


def test_the_devices_ae_title_without_its_certificate_is_rejected(service, pki):
    ris, tls_port = service
    # on the plain port: no certificate at all
    output = _findscu(ris.dicom_port, pki, "CT1", None)
    assert "Association Rejected" in output, output
    assert "Calling AE Title Not Recognized" in output, output
    # on the TLS port with another (trusted) certificate
    output = _findscu(tls_port, pki, "CT1", "other")
    assert "Association Rejected" in output, output


def test_devices_without_a_certificate_subject_are_admitted_as_before(service, pki):
    ris, tls_port = service
    assert "(Success)" in _findscu(ris.dicom_port, pki, "MR1", None)
    assert "(Success)" in _findscu(tls_port, pki, "MR1", "other")


def test_a_wrong_called_ae_title_is_rejected_when_required(service, pki):
    ris, _ = service
    output = _findscu(ris.dicom_port, pki, "MR1", None, aec="NOT-RIS")
    assert "Association Rejected" in output and "Called AE Title Not Recognized" in output, output


def _associate(ris: RisService, aet: str, context):
    ae = AE(ae_title=aet)
    ae.add_requested_context(context)
    assoc = ae.associate("127.0.0.1", ris.dicom_port, ae_title="RIS")
    assert assoc.is_established
    return assoc


def test_ris_introduces_itself_with_its_own_implementation_identity(service):
    from pynetdicom.sop_class import Verification

    from worklist.dimse import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

    ris, _ = service
    assoc = _associate(ris, "MR1", Verification)
    try:
        assert assoc.acceptor.implementation_class_uid == IMPLEMENTATION_CLASS_UID
        assert assoc.acceptor.implementation_version_name == IMPLEMENTATION_VERSION_NAME
    finally:
        assoc.release()


def test_a_device_that_may_not_send_mpps_gets_not_authorized(service):
    ris, _ = service
    assoc = _associate(ris, "VIEWER", ModalityPerformedProcedureStep)
    try:
        attributes = Dataset()
        attributes.PerformedProcedureStepStatus = "IN PROGRESS"
        status, _ = assoc.send_n_create(attributes, ModalityPerformedProcedureStep,
                                        generate_uid())
    finally:
        assoc.release()
    assert status.Status == 0x0124
    assert "may not send MPPS" in status.ErrorComment


def test_a_device_that_may_not_store_gets_not_authorized(service):
    ris, _ = service
    [image] = ct_study(1)
    ae = AE(ae_title="VIEWER")
    ae.add_requested_context(image.SOPClassUID, image.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", ris.dicom_port, ae_title="RIS")
    assert assoc.is_established
    try:
        status = assoc.send_c_store(image)
    finally:
        assoc.release()
    assert status.Status == 0x0124
    assert "may not store" in status.ErrorComment


@pytest.mark.parametrize("calling,subject,refused", [
    ("CT1", "CN=ct1,O=radiology", False),
    ("CT1", "", True),
    ("CT1", "CN=other", True),
    ("MR1", "CN=ct1,O=radiology", True),
    ("MR1", "CN=other", False),
    ("MR1", "", False),
])
def test_certificate_refusal_rules(calling, subject, refused):
    from ris.dicom_server import certificate_refusal
    from worklist.peers import normalise_subject

    certificates = {"CT1": normalise_subject("/CN=CT1/O=Radiology")}
    assert bool(certificate_refusal(calling, subject, certificates)) is refused


@pytest.mark.django_db(transaction=True)  # last in the file: its flush empties the worklist
def test_a_certificate_is_admitted_only_as_its_own_ae_title(service, pki):
    ris, tls_port = service
    output = _findscu(tls_port, pki, "MR1", "ct1")  # CT1's certificate claiming to be MR1
    assert "Association Rejected" in output, output
    why = "the certificate CN=ct1,O=radiology belongs to CT1, not MR1"
    assert f"refused: {why}" in ris.log()
    # Not in a test transaction (on SQLite it would hold the lock the service writes under).
    deadline = time.monotonic() + 20
    while (("MR1", why) not in _committed_audit("peer.authentication_failed")
           and time.monotonic() < deadline):
        time.sleep(0.1)
    assert ("MR1", why) in _committed_audit("peer.authentication_failed")
