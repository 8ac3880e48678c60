"""Driving DCMTK's findscu and dcmdump (the real, independent peers) from the MWL tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian


def tool(name: str) -> str:
    """The DCMTK binary, not pynetdicom's console scripts of the same name that a virtualenv or
    pyenv puts first on PATH (``findscu``, ``echoscu``, ``storescu``)."""
    for directory in ("/usr/bin", "/usr/local/bin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"DCMTK {name} is not installed: run scripts/test")
    return found


_FINAL = re.compile(r"Received Final Find Response \(([^)]*)\)")


@dataclass
class FindResult:
    responses: list[Dataset]
    final: str
    output: str
    returncode: int
    raw: list[bytes] = field(default_factory=list)

    @property
    def sps_ids(self) -> set[str]:
        return {
            str(ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)
            for ds in self.responses
        }

    @property
    def patient_ids(self) -> list[str]:
        return [str(ds.PatientID) for ds in self.responses]


def query_file(
    directory: Path,
    identifier: Dataset,
    name: str = "query.dcm",
    patch: tuple[bytes, bytes] | None = None,
) -> Path:
    """An identifier as a DICOM file findscu can read (``findscu ... query.dcm``).

    ``patch`` (placeholder, bytes of the same length) puts bytes into the file that pydicom
    would not write as they are (GB18030 text under a false ISO_IR 192 label).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    identifier.file_meta = meta
    path = directory / name
    identifier.save_as(path, enforce_file_format=True)
    if patch is not None:
        placeholder, value = patch
        assert len(placeholder) == len(value)
        path.write_bytes(path.read_bytes().replace(placeholder, value))
    return path


def findscu(
    port: int,
    keys: list[str] = (),  # type: ignore[assignment]
    *,
    query: Dataset | None = None,
    calling_ae: str = "FINDSCU",
    called_ae: str = "RIS",
    extra: list[str] = (),  # type: ignore[assignment]
    timeout: float = 60,
    patch: tuple[bytes, bytes] | None = None,
) -> FindResult:
    """One ``findscu -W`` (Modality Worklist) process; every response as a dataset."""
    with tempfile.TemporaryDirectory(prefix="findscu-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        args = [
            tool("findscu"), "-v", "-W", "-aet", calling_ae, "-aec", called_ae,
            "-X", "-od", str(out), *extra,
        ]
        for key in keys:
            args += ["-k", key]
        args += ["127.0.0.1", str(port)]
        if query is not None:
            args.append(str(query_file(Path(tmp), query, patch=patch)))
        result = subprocess.run(
            args, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout
        )
        output = result.stdout + result.stderr
        files = sorted(out.glob("rsp*.dcm"))
        raw = [f.read_bytes() for f in files]
        responses = [dcmread(f) for f in files]
        for ds in responses:
            ds.decode()  # read with its Specific Character Set while the file exists
        match = _FINAL.search(output)
        return FindResult(
            responses=responses,
            final=match.group(1) if match else "",
            output=output,
            returncode=result.returncode,
            raw=raw,
        )


def dcmdump(data: bytes, *args: str) -> str:
    """dcmdump of one response file's bytes (e.g. ``+U8`` to convert to UTF-8 for display)."""
    with tempfile.NamedTemporaryFile(suffix=".dcm") as handle:
        handle.write(data)
        handle.flush()
        result = subprocess.run(
            [tool("dcmdump"), *args, handle.name], capture_output=True, timeout=30
        )
    return result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")


def sps(**keys: str) -> list[str]:
    """findscu ``-k`` arguments for keys inside the Scheduled Procedure Step Sequence item."""
    return [f"ScheduledProcedureStepSequence[0].{name}={value}" for name, value in keys.items()]
