"""Who a network peer is, from its TLS client certificate: the one reading of a certificate's
subject that the DICOM and MLLP listeners and the device and HL7 sender records share.

A subject is written the way ``openssl x509 -subject`` and most PKI screens show it
(``CN=CT1,O=Radiology`` or ``/CN=CT1/O=Radiology``); compared without case, spaces or the
choice of separator, in the order of the certificate.
"""

from __future__ import annotations

import re

#: The attribute names of ``ssl.SSLSocket.getpeercert()`` and their RFC 4514 short forms.
_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "domainComponent": "DC",
    "emailAddress": "EMAILADDRESS",
    "serialNumber": "SERIALNUMBER",
}


def normalise_subject(text: str) -> str:
    """``CN=CT1,O=Radiology`` for any of the usual ways of writing that subject."""
    parts = [p.strip() for p in re.split(r"[,/]", text or "") if p.strip()]
    out = []
    for part in parts:
        name, _, value = part.partition("=")
        out.append(f"{_SHORT.get(name.strip(), name.strip()).upper()}={value.strip().lower()}")
    return ",".join(out)


def certificate_subject(peercert: dict | None) -> str:
    """The normalised subject of a verified peer certificate (``getpeercert()``), "" for none."""
    if not peercert:
        return ""
    parts = []
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            parts.append(f"{_SHORT.get(name, name)}={value}")
    return normalise_subject(",".join(parts))
