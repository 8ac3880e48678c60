"""Fixtures of the HL7 tests: the procedure catalogue, a dedicated ``ris serve``, an MLLP client.

The client is the python ``hl7`` package's ``MLLPClient`` (an independent implementation of
MLLP, not ours) and ACKs are read with ``hl7.parse``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient

from ris.models import HL7Sender
from tests.service import RisService, test_database_url
from worklist.models import Device, ProcedureOrderCode, ProcedureType

MESSAGES = Path(__file__).parent / "messages"
VT, END = b"\x0b", b"\x1c\x0d"


@pytest.fixture(scope="package")
def hl7_service(django_db_setup, django_db_blocker, tmp_path_factory):
    """One ``ris serve`` for the HL7 tests, with a fast outbound queue (short poll and backoff)."""
    with django_db_blocker.unblock():
        url = test_database_url()
    service = RisService(
        data_dir=tmp_path_factory.mktemp("ris-hl7"),
        database_url=url,
        extra_env={
            "RIS_OUTBOUND_POLL_SECONDS": "1",
            "RIS_OUTBOUND_BACKOFF_MS": "300",
            "RIS_OUTBOUND_BACKOFF_MAX_MS": "1000",
            "RIS_MLLP_IDLE_TIMEOUT_SECONDS": "30",
        },
    )
    service.start()
    service.wait_healthy(timeout=180)  # the shared test machine is sometimes heavily loaded
    yield service
    stop_service(service)


def process_tree(pid: int) -> list[int]:
    """``pid``'s descendants (from /proc), so a stop that timed out leaves no orphan behind."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            child = int(stat.parent.name)
            found += [child, *process_tree(child)]
    return found


def stop_service(service: RisService) -> None:
    children = process_tree(service.process.pid) if service.process else []
    try:
        service.stop(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in children:  # the supervisor was killed: its children must not outlive it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Catalogue:
    ct1: Device
    mr1: Device
    cthead: ProcedureType
    mrbrain: ProcedureType
    usabd: ProcedureType
    ct001: ProcedureType


@pytest.fixture
def catalogue() -> Catalogue:
    """The procedure types the corpus orders, and the GB 18030 default of sender CHIS."""
    ct1 = Device.objects.create(
        ae_title="CT1", modality="CT", station_name="CT1", allow_overbooking=True
    )
    mr1 = Device.objects.create(
        ae_title="MR1", modality="MR", station_name="MR1", allow_overbooking=True
    )

    def ptype(code, meaning, modality, station=None):
        created = ProcedureType.objects.create(
            code_value=code, code_scheme="L", code_meaning=meaning, modality=modality,
            description=meaning, default_duration_minutes=20,
        )
        if station is not None:
            created.stations.add(station)
        return created

    cthead = ptype("CTHEAD", "CT Head without contrast", "CT", ct1)
    ProcedureOrderCode.objects.create(code="RAD001", coding_system="HISCODE", procedure_type=cthead)
    catalogue = Catalogue(
        ct1=ct1,
        mr1=mr1,
        cthead=cthead,
        mrbrain=ptype("MRBRAIN", "MR Brain", "MR", mr1),
        usabd=ptype("USABD", "US Abdomen", "US"),
        ct001=ptype("CT001", "胸部CT平扫", "CT", ct1),
    )
    HL7Sender.objects.create(application="CHIS", default_charset="GB18030")
    return catalogue


def unframe(data: bytes) -> bytes:
    start = data.find(VT)
    end = data.find(END)
    assert start >= 0 and end > start, f"not an MLLP frame: {data[:80]!r}"
    return data[start + 1 : end]


def send(port: int, message: bytes) -> bytes:
    """Send one message with the hl7 package's MLLP client; return the ACK (unframed bytes)."""
    with MLLPClient("127.0.0.1", port) as client:
        client.socket.settimeout(30)
        return unframe(receive_all(client, message))


def receive_all(client: MLLPClient, message: bytes) -> bytes:
    reply = client.send_message(message)
    while END not in reply:  # MLLPClient returns one recv(); an ACK may come in pieces
        chunk = client.socket.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply


@dataclass
class Ack:
    code: str
    control_id: str
    text: str
    error: str
    raw: bytes


def read_ack(raw: bytes, codec: str = "utf-8") -> Ack:
    """MSA-1, MSA-2, MSA-3 and the ERR segment, read with the ``hl7`` package."""
    parsed = hl7.parse(raw.decode(codec))
    msa = parsed.segment("MSA")
    try:
        err = str(parsed.segment("ERR"))
    except KeyError:
        err = ""
    text = str(msa[3]) if len(msa) > 3 else ""
    return Ack(str(msa[1]), str(msa[2]), text, err, raw)


def corpus_message(name: str) -> bytes:
    return (MESSAGES / f"{name}.hl7").read_bytes()


def raw_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def orm(
    control_id: str,
    placer: str,
    *,
    order_control: str = "NW",
    code: str = "CTHEAD",
    start: str = "202612011000",
    patient_id: str = "P1001",
    name: str = "Doe^Jane",
    version: str = "2.3.1",
    sender: str = "HIS",
    extra_orc: dict[int, str] | None = None,
) -> bytes:
    """A v2.3.1 ORM^O01 (or v2.5.1 OMG^O19 with TQ1) built field by field."""
    omg = version >= "2.5"
    msh = (
        f"MSH|^~\\&|{sender}|HOSP|RIS|RAD|20261130120000||"
        f"{'OMG^O19^OMG_O19' if omg else 'ORM^O01'}|{control_id}|P|{version}"
    )
    orc_fields = {1: order_control, 2: f"{placer}^{sender}"}
    if start and not omg:
        orc_fields[7] = f"^^^{start}^^R"
    orc_fields.update(extra_orc or {})
    segments = [
        msh,
        f"PID|1||{patient_id}^^^HOSP^MR||{name}||19700101|F",
        "PV1|1|O|RAD",
        "ORC|" + "|".join(orc_fields.get(i, "") for i in range(1, max(orc_fields) + 1)),
    ]
    if omg and start:
        segments.append(f"TQ1|1||||||{start}||R")
    segments.append(f"OBR|1|{placer}^{sender}||{code}^{code} exam^L")
    return ("\r".join(segments) + "\r").encode()
