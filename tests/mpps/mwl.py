"""What a modality sees on the worklist, asked with DCMTK's findscu (a real MWL SCU)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pydicom


def dcmtk(tool: str) -> str:
    """The DCMTK binary: pynetdicom installs apps of the same names that may shadow it on PATH."""
    path = shutil.which(tool, path="/usr/bin:/usr/local/bin:/bin")
    assert path, f"DCMTK {tool} is not installed (scripts/test installs it)"
    return path


def worklist_accessions(port: int, *, station: str, called_ae: str = "RIS") -> list[str]:
    """Accession numbers of the worklist items scheduled on ``station`` (any date)."""
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            [
                dcmtk("findscu"),
                "-W",
                "-aet",
                station,
                "-aec",
                called_ae,
                "-X",
                "-od",
                out,
                "-k",
                "AccessionNumber",
                "-k",
                "PatientID",
                "-k",
                f"ScheduledProcedureStepSequence[0].ScheduledStationAETitle={station}",
                "-k",
                "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
                "127.0.0.1",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return sorted(
            str(pydicom.dcmread(path).AccessionNumber) for path in Path(out).glob("rsp*.dcm")
        )
