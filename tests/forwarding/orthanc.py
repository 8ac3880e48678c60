"""A real Orthanc (Debian package ``orthanc``) run by the tests: the PACS of the forwarding tests.

Started from its own JSON config and storage directory under the test's tmp dir, HTTP on
127.0.0.1 (``RemoteAccessAllowed`` false), never the system service. Orthanc 1.10 has no option
to bind its DICOM port to one address, so that port listens on all interfaces for the few
seconds of a test run. ris is declared in ``DicomModalities`` with storage commitment allowed:
Orthanc's storage commitment SCP (since 1.6.0) sends its N-EVENT-REPORT on a new association to
the AE the N-ACTION came from, which it looks up there. ``OverwriteInstances`` is on, as
docs/conformance.md asks of a PACS without IOCM (a corrected instance replaces the old copy).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.service import free_port


@dataclass
class Orthanc:
    directory: Path
    ris_ae_title: str
    ris_port: int
    ae_title: str = "ORTHANC"
    dicom_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def config(self) -> dict:
        return {
            "Name": "ris-test-pacs",
            "StorageDirectory": str(self.directory / "storage"),
            "IndexDirectory": str(self.directory / "storage"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "SaveJobs": False,
            "ConcurrentJobs": 2,
            "DicomScuTimeout": 5,
            # A study linked to the right order is sent again under the same SOP Instance UIDs
            # to a PACS without IOCM: the corrected copy must replace the stored one, which
            # Orthanc does only when told (by default it keeps the first copy).
            "OverwriteInstances": True,
            "DicomModalities": {
                "ris": {
                    "AET": self.ris_ae_title,
                    "Host": "127.0.0.1",
                    "Port": self.ris_port,
                    "AllowStorageCommitment": True,
                }
            },
        }

    def start(self) -> Orthanc:
        if shutil.which("Orthanc") is None:
            raise RuntimeError(
                "Orthanc is not installed: run scripts/test (Debian package orthanc)"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=2))
        log = open(self.directory / "orthanc.log", "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            ["Orthanc", str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
        )
        self.wait_up()
        return self

    def wait_up(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited:\n{self.log()}")
            try:
                self.get("/system")
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"Orthanc not up after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log(self) -> str:
        path = self.directory / "orthanc.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # --- REST API -------------------------------------------------------------------------

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def post(self, path: str, body):
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def instances_of_study(self, study_uid: str) -> list[dict]:
        """Every instance of the study Orthanc holds: its tags (MainDicomTags + patient's)."""
        found = self.post(
            "/tools/find",
            {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True},
        )
        return found

    def tags(self, instance_id: str) -> dict:
        return self.get(f"/instances/{instance_id}/simplified-tags")

    def clear(self) -> None:
        """Delete every patient, so each test starts from an empty PACS."""
        for patient in self.get("/patients"):
            request = urllib.request.Request(f"{self.url}/patients/{patient}", method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
