"""A throw-away PKI for TLS tests: a CA and certificates it signs, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str = "ca", subject: str = "/CN=Test CA") -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
             "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.crt"))


def make_certificate(directory: Path, name: str, subject: str, ca: str = "ca") -> None:
    """``name.key`` and ``name.crt`` for ``subject`` (e.g. ``/CN=CT1/O=Radiology``), signed by
    the CA ``ca``."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
             "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.csr"))
    _openssl("x509", "-req", "-in", str(directory / f"{name}.csr"), "-CA",
             str(directory / f"{ca}.crt"), "-CAkey", str(directory / f"{ca}.key"),
             "-CAcreateserial", "-days", "2", "-out", str(directory / f"{name}.crt"))
