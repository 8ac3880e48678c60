"""DICOM TLS end to end through the gateway: a modality stores with DCMTK ``storescu +tls`` on
ris's TLS port (client certificate of the CA), and ris forwards the images over TLS to a DCMTK
``storescp +tls`` PACS that requires ris's client certificate (mutual TLS both ways, BCP 195)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mpps.forwarding.models import InstanceDelivery, PacsDestination
from tests.factories import DeviceFactory, PatientFactory, first_step, make_order
from tests.forwarding.conftest import FAST, wait_for
from tests.forwarding.instances import ct_study, write_files
from tests.mwl.dcmtk import tool
from tests.service import free_port

pytestmark = [pytest.mark.dcmtk, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pki(forwarding_pki) -> Path:
    """The session's PKI: every ``ris serve`` of the session forwards with its ``ris``
    certificate, since whichever one leads the scheduler sends these images."""
    return forwarding_pki


@pytest.fixture
def tls_pacs(tmp_path, pki):
    """DCMTK's storescp with TLS, requiring a client certificate of the CA (its default)."""
    port, out = free_port(), tmp_path / "received"
    out.mkdir()
    process = subprocess.Popen(
        [tool("storescp"), "-v", "-aet", "TLSPACS", "+tls", str(pki / "server.key"),
         str(pki / "server.crt"), "+cf", str(pki / "ca.crt"), "-od", str(out), str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        yield port, out, process
    finally:
        process.terminate()
        process.wait(10)


def test_images_in_over_tls_go_out_over_tls_with_both_sides_authenticated(
    new_ris_service, tls_pacs, pki, tmp_path
):
    pacs_port, received, storescp = tls_pacs
    tls_port = free_port()
    ris = new_ris_service(
        "--only", "dicom,scheduler",
        RIS_DICOM_TLS_PORT=str(tls_port),
        RIS_DICOM_TLS_CERT=str(pki / "server.crt"),
        RIS_DICOM_TLS_KEY=str(pki / "server.key"),
        RIS_DICOM_TLS_CA=str(pki / "ca.crt"),
        RIS_PACS_TLS_CA=str(pki / "ca.crt"),
        RIS_PACS_TLS_CERT=str(pki / "ris.crt"),
        RIS_PACS_TLS_KEY=str(pki / "ris.key"),
        **FAST,
    )
    PacsDestination.objects.create(
        name="tls-pacs", ae_title="TLSPACS", host="localhost", port=pacs_port, use_tls=True,
        send_mpps=False, send_images=True, storage_commitment=False,
    )
    patient = PatientFactory(patient_id="P-TLS-1", issuer="HOSP")
    step = first_step(make_order(patient=patient, station=DeviceFactory(ae_title="CT01")))
    images = ct_study(3, study_uid=step.requested_procedure.study_instance_uid)
    files = write_files(images, tmp_path / "study")
    wait_for(lambda: "dicom TLS" in ris.log(), timeout=120, what="the TLS port", service=ris)

    result = subprocess.run(
        [tool("storescu"), "-v", "-aet", "CT01", "-aec", "RIS", "+tls",
         str(pki / "modality.key"), str(pki / "modality.crt"), "+cf", str(pki / "ca.crt"),
         "127.0.0.1", str(tls_port), *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    stored = InstanceDelivery.objects.filter(state=InstanceDelivery.State.STORED)
    wait_for(lambda: stored.count() == 3, timeout=120, what="3 instances stored over TLS",
             service=ris)
    at_pacs = sorted(p for p in received.rglob("*") if p.is_file())
    assert len(at_pacs) == 3
    dump = subprocess.run([tool("dcmdump"), str(at_pacs[0])], capture_output=True, text=True,
                          timeout=60).stdout
    assert "P-TLS-1" in dump  # coerced to the order's patient on the way
    # The PACS port speaks only TLS: what arrived came over it (a plain echo is refused).
    plain = subprocess.run([tool("echoscu"), "-aec", "TLSPACS", "127.0.0.1", str(pacs_port)],
                           capture_output=True, text=True, timeout=60)
    assert plain.returncode != 0
