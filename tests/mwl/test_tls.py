"""DICOM TLS on the second port (RIS_DICOM_TLS_PORT), tested with DCMTK's own TLS: findscu and
echoscu ``+tls`` with the BCP 195 profile, client certificates required when a CA is configured,
and a peer that connects to the TLS port and never handshakes holds nothing up."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.mwl.conftest import committed, standard_worklist
from tests.mwl.dcmtk import tool
from tests.mwl.test_settings import _wait_for_port
from tests.service import RisService, free_port
from tests.service import test_database_url as database_url

pytestmark = [pytest.mark.dcmtk, pytest.mark.django_db]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for localhost and a client certificate, all signed by it."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))
    for name, cn in (("server", "localhost"), ("client", "CT1")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.crt"),
                 "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-out", str(d / f"{name}.crt"))
    # a client certificate from a CA the server does not trust
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Rogue",
             "-keyout", str(d / "rogue.key"), "-out", str(d / "rogue.crt"))
    return d


@pytest.fixture(scope="module")
def service(django_db_setup, django_db_blocker, tmp_path_factory, pki):
    with committed(django_db_blocker):
        standard_worklist()
        ris = RisService(
            data_dir=tmp_path_factory.mktemp("ris-tls"),
            database_url=database_url(),
            extra_env={
                "RIS_DICOM_TLS_PORT": str(free_port()),
                "RIS_DICOM_TLS_CERT": str(pki / "server.crt"),
                "RIS_DICOM_TLS_KEY": str(pki / "server.key"),
                "RIS_DICOM_TLS_CA": str(pki / "ca.crt"),
                "RIS_DICOM_FIRST_PDU_TIMEOUT_SECONDS": "3",
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


def _dcmtk(name: str, port: int, pki: Path, *args: str, key: str = "client") -> str:
    command = [tool(name), "-v", "-aet", "CT1", "-aec", "RIS",
               "+tls", str(pki / f"{key}.key"), str(pki / f"{key}.crt"),
               "+cf", str(pki / "ca.crt"), *args, "127.0.0.1", str(port)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr + f"\nexit {result.returncode}"


def test_findscu_over_tls_gets_its_worklist(service, pki):
    _, port = service
    output = _dcmtk("findscu", port, pki, "-W", "-k", "PatientID=PID-02", "-k", "PatientName")
    assert "Received Final Find Response (Success)" in output, output
    assert "PID-02" in output


def test_echoscu_over_tls_is_answered(service, pki):
    _, port = service
    output = _dcmtk("echoscu", port, pki)
    assert output.endswith("exit 0"), output


def test_a_client_certificate_from_an_unknown_ca_is_refused(service, pki):
    _, port = service
    output = _dcmtk("echoscu", port, pki, key="rogue")
    assert not output.endswith("exit 0"), output


def test_a_plain_association_on_the_tls_port_is_refused(service):
    _, port = service
    result = subprocess.run([tool("echoscu"), "-aec", "RIS", "127.0.0.1", str(port)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_a_peer_that_never_handshakes_does_not_hold_up_the_tls_port(service, pki):
    ris, port = service
    with socket.create_connection(("127.0.0.1", port)) as idle:
        output = _dcmtk("echoscu", port, pki)  # answered while the silent one is connected
        assert output.endswith("exit 0"), output
        idle.settimeout(10)
        started = time.monotonic()
        assert idle.recv(16) == b""  # closed after the first-PDU timeout
        assert time.monotonic() - started < 8
    assert "Traceback" not in ris.log()
