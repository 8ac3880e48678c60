"""The examples of docs/hl7-interface.md section 6 are what ris really takes and sends.

Each inbound example is sent, in document order, with the hl7 package's MLLP client to a real
``ris serve`` and must get the MSA-1 its marker names. Each ACK example must be the ACK ris gave
to the inbound example it names, and each status example the message ris builds for that order
at that point (``ris.hl7.notifications.build_message``), both read with ``hl7.parse`` and
compared field by field except what changes on every run (MSH-7, MSH-10, ORC-9, and the
identifiers ris draws from counters). So an example that drifts from the code fails here.

Markers, each on the line before a ```` ```hl7 ```` block:
``<!-- example in NAME ACK -->``, ``<!-- example ack NAME -->``,
``<!-- example status PLACER-NUMBER VERSION -->`` (VERSION ``swf-b``: the OMI^O23 of an IHE SWF.b
receiver), ``<!-- example patient PATIENT-ID CHANGE -->`` (the ADT an archive with patient
updates gets for that patient's CHANGE, ``ris.hl7.notifications.ADT_EVENTS``, v2.5.1;
``identifier=ID^ISSUER`` names the ID before an identifier change).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import hl7
import pytest

from ris.hl7.notifications import build_message, patient_payload, snapshot, swf_b_payload
from ris.models import HL7Destination, OutboundJob
from tests.hl7.conftest import read_ack, send
from worklist.models import Order, Patient

DOC = Path(__file__).resolve().parents[2] / "docs" / "hl7-interface.md"
_EXAMPLE = re.compile(r"<!-- example (\w+) ([^ ]+)(?: ([^ ]+))? -->\n```hl7\n(.*?)```", re.S)
#: Values drawn from ris's counters or clocks: equal in kind, not in value, from run to run.
_DRAWN = [
    (re.compile(r"\bA\d{9}\b"), "<accession>"),
    (re.compile(r"\bRP\d{8}\b"), "<rp-id>"),
    (re.compile(r"\bSPS\d{8}\b"), "<sps-id>"),
    (re.compile(r"\b2\.25\.\d+\b"), "<uid>"),
]


def examples() -> list[tuple[str, str, str, str]]:
    return [
        (kind, name, extra or "", text.strip())
        for kind, name, extra, text in _EXAMPLE.findall(DOC.read_text(encoding="utf-8"))
    ]


def normalised(text: str) -> list[list[str]]:
    """Segments as field lists (after ``hl7.parse`` accepted the text), with the
    run-dependent fields blanked."""
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    hl7.parse(text)
    segments = []
    for line in text.split("\r"):
        fields = line.split("|")
        # MSH-7 and MSH-10 (in MSH, MSH-1 is the separator itself: MSH-n is fields[n - 1])
        for n in {"MSH": (6, 9), "ORC": (9,), "EVN": (2,)}.get(fields[0], ()):
            if n < len(fields):
                fields[n] = "*"
        line = "|".join(fields)
        for pattern, placeholder in _DRAWN:
            line = pattern.sub(placeholder, line)
        segments.append(line.split("|"))
    return segments


def destination(version: str) -> HL7Destination:
    """The HIS in the given version, or (``swf-b``) an IHE SWF.b receiver of OMI^O23."""
    swf_b = version == "swf-b"
    return HL7Destination(
        name="HIS", host="his.example", port=2575, version="2.5.1" if swf_b else version,
        charset="UNICODE UTF-8", sending_application="RIS", sending_facility="RAD",
        receiving_application="ARCHIVE" if swf_b else "HIS", receiving_facility="HOSP",
        swf_b_omi=swf_b,
    )


def test_the_document_has_an_example_of_every_message_type_in_and_out():
    found = examples()
    inbound = {hl7.parse(text.replace("\n", "\r")).segment("MSH")[9][0][0][0]: name
               for kind, name, _, text in found if kind == "in"}
    assert {"ADT", "ORM", "OMG", "OMI"} <= set(map(str, inbound))
    events = {
        str(hl7.parse(text.replace("\n", "\r")).segment("MSH")[9][0][1][0])
        for kind, _, _, text in found if kind == "in" and text.split("|")[8].startswith("ADT")
    }
    assert {"A01", "A03", "A04", "A08", "A11", "A24", "A37", "A40", "A47"} <= events
    kinds = {kind for kind, *_ in found}
    assert kinds == {"in", "ack", "status", "patient"}
    versions = {extra for kind, _, extra, _ in found if kind == "status"}
    assert versions == {"2.3.1", "2.5.1", "swf-b"}


@pytest.mark.django_db(transaction=True)
def test_every_example_is_what_ris_takes_and_sends(hl7_service, catalogue):
    acks: dict[str, bytes] = {}
    written: dict[str, str] = {}
    for kind, name, extra, text in examples():
        if kind == "in":
            raw = send(hl7_service.mllp_port, (text.replace("\n", "\r") + "\r").encode())
            ack = read_ack(raw)
            assert ack.code == extra, f"example {name}: {ack.code} {ack.error}"
            acks[name] = raw
            continue
        if kind == "ack":
            actual = acks[name].decode()
        elif kind == "patient":
            patient = Patient.objects.get(patient_id=name)
            change, _, prior = extra.partition("=")  # identifier=OLD-ID^ISSUER: the ID before
            prior_id, _, prior_issuer = prior.partition("^")
            payload = patient_payload(
                patient, change, prior={"id": prior_id, "issuer": prior_issuer} if prior else None
            )
            job = OutboundJob(pk=1, kind="hl7.patient", payload=payload)
            actual, _ = build_message(job, destination("swf-b"))  # ARCHIVE, v2.5.1
        else:
            order = Order.objects.get(placer_order_number=name)
            payload = swf_b_payload(order, "NW") if extra == "swf-b" else snapshot(order)
            job = OutboundJob(pk=1, kind="hl7.order_status", payload=payload)
            actual, _ = build_message(job, destination(extra))
        written[f"{kind} {name} {extra}".strip()] = actual.replace("\r", "\n").strip()
        if os.environ.get("RIS_WRITE_DOC_EXAMPLES"):
            continue
        assert normalised(actual) == normalised(text), f"example {kind} {name} {extra}"
    if os.environ.get("RIS_WRITE_DOC_EXAMPLES"):
        Path(os.environ["RIS_WRITE_DOC_EXAMPLES"]).write_text(json.dumps(written, indent=1))
