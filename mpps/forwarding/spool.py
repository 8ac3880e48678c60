"""The gateway's spool: one file per received instance, written so that a crash never leaves half.

A file is written to a temporary name in its final directory, fsynced, renamed over the final
name and the directory fsynced: after ``write`` returns, the instance survives a power cut, so the
C-STORE Success that follows is a promise ris can keep (the modality may delete its copy).
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

from django.conf import settings


def root() -> Path:
    return Path(settings.RIS_FORWARD_SPOOL_DIR)


def relative_path(sop_instance_uid: str) -> str:
    """``ab/<uid>.<token>.dcm``: 256 fan-out directories keep each one small on a busy gateway.

    Each reception gets a file of its own (the token): an instance sent again while its previous
    copy is being forwarded or purged never has its new file deleted or half-sent.
    """
    bucket = hashlib.sha1(sop_instance_uid.encode()).hexdigest()[:2]
    return f"{bucket}/{sop_instance_uid}.{uuid.uuid4().hex[:12]}.dcm"


def absolute(relative: str) -> Path:
    return root() / relative


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(relative: str, data: bytes) -> int:
    """Write ``data`` atomically and durably at ``relative``; returns its size."""
    final = absolute(relative)
    directory = final.parent
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        _fsync_dir(directory.parent)
    tmp = directory / f".{final.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    _fsync_dir(directory)
    return len(data)


def remove(relative: str) -> None:
    try:
        absolute(relative).unlink()
    except FileNotFoundError:
        pass


def files() -> list[Path]:
    """Every instance file in the spool (for operators and tests)."""
    if not root().is_dir():
        return []
    return sorted(p for p in root().glob("*/*.dcm"))


def remove_other_copies(sop_instance_uid: str, keep: str) -> None:
    """Delete every file of the instance but ``keep``: older receptions, and copies written by a
    process that crashed before recording them (the modality then sent the instance again)."""
    directory = absolute(keep).parent
    for path in directory.glob(f"{sop_instance_uid}.*.dcm"):
        if path.name != absolute(keep).name:
            path.unlink(missing_ok=True)


def unreferenced(referenced: set[str], older_than: float) -> list[Path]:
    """Spool files (and temporary files) no instance row names, last written before
    ``older_than`` (a timestamp): leftovers of a crash between the write and the commit."""
    if not root().is_dir():
        return []
    found = []
    for path in root().glob("*/*"):
        relative = f"{path.parent.name}/{path.name}"
        if relative in referenced:
            continue
        try:
            if path.stat().st_mtime < older_than:
                found.append(path)
        except FileNotFoundError:
            continue
    return found
