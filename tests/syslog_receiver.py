"""A syslog audit repository for tests: RFC 5424 messages over UDP (RFC 5426) or TLS (RFC 5425),
each checked against the DICOM audit message structure (PS3.15 A.5.1).

No packaged syslog receiver is installed on the build machine (neither rsyslog nor syslog-ng),
so this is a plain socket server: it parses what arrives as a repository would (octet-counted
frames over TLS, one message per datagram over UDP), not through any code of ris.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree as ET

#: RFC 5424 6: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG
_HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    rb"(?P<msgid>\S+) (?P<sd>-|\[.*?\]) (?P<msg>.*)$", re.S)
_BOM = b"\xef\xbb\xbf"


@dataclass
class SyslogMessage:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    msgid: str
    xml: ET.Element


def parse(data: bytes) -> SyslogMessage:
    match = _HEADER.match(data)
    assert match, f"not an RFC 5424 message: {data[:80]!r}"
    msg = match["msg"]
    assert msg.startswith(_BOM), "RFC 5424 6.4: a UTF-8 MSG starts with the BOM"
    timestamp = match["ts"].decode()
    datetime.fromisoformat(timestamp.replace("Z", "+00:00"))  # RFC 3339 time
    root = ET.fromstring(msg[len(_BOM):].decode("utf-8"))
    validate_audit_message(root)
    return SyslogMessage(int(match["pri"]), timestamp, match["host"].decode(),
                         match["app"].decode(), match["msgid"].decode(), root)


# --- PS3.15 A.5.1: the elements and attributes the schema requires --------------------------

_ACTION_CODES = {"C", "R", "U", "D", "E"}
_OUTCOMES = {"0", "4", "8", "12"}


def _coded(element: ET.Element) -> None:
    for attribute in ("csd-code", "codeSystemName", "originalText"):
        assert element.get(attribute), f"{element.tag} lacks {attribute}"


def validate_audit_message(root: ET.Element) -> None:
    """Raise AssertionError where ``root`` breaks the audit message schema's structure."""
    assert root.tag == "AuditMessage"
    tags = [child.tag for child in root]
    assert tags[0] == "EventIdentification" and tags.count("EventIdentification") == 1
    assert tags.count("AuditSourceIdentification") == 1
    # the schema's sequence: event, participants (1..n), source, objects (0..n)
    order = {"EventIdentification": 0, "ActiveParticipant": 1, "AuditSourceIdentification": 2,
             "ParticipantObjectIdentification": 3}
    assert all(tag in order for tag in tags), tags
    assert [order[t] for t in tags] == sorted(order[t] for t in tags), tags
    assert tags.count("ActiveParticipant") >= 1

    event = root.find("EventIdentification")
    assert event.get("EventActionCode", "E") in _ACTION_CODES
    assert event.get("EventOutcomeIndicator") in _OUTCOMES
    datetime.fromisoformat(event.get("EventDateTime"))
    event_ids = event.findall("EventID")
    assert len(event_ids) == 1
    _coded(event_ids[0])
    for type_code in event.findall("EventTypeCode"):
        _coded(type_code)

    for participant in root.findall("ActiveParticipant"):
        assert participant.get("UserID")
        assert participant.get("UserIsRequestor") in ("true", "false")
        if participant.get("NetworkAccessPointID"):
            assert participant.get("NetworkAccessPointTypeCode") in {"1", "2", "3", "4", "5"}
        for role in participant.findall("RoleIDCode"):
            _coded(role)

    source = root.find("AuditSourceIdentification")
    assert source.get("AuditSourceID")
    for type_code in source.findall("AuditSourceTypeCode"):
        _coded(type_code)

    for obj in root.findall("ParticipantObjectIdentification"):
        assert obj.get("ParticipantObjectID")
        assert obj.get("ParticipantObjectTypeCode") in {"1", "2", "3", "4"}
        assert 1 <= int(obj.get("ParticipantObjectTypeCodeRole")) <= 24
        children = [child.tag for child in obj]
        assert children[0] == "ParticipantObjectIDTypeCode"
        _coded(obj[0])
        assert set(children[1:]) <= {"ParticipantObjectName", "ParticipantObjectQuery",
                                     "ParticipantObjectDetail"}
        assert not ({"ParticipantObjectName", "ParticipantObjectQuery"} <= set(children)), \
            "name and query are a choice"
        for detail in obj.findall("ParticipantObjectDetail"):
            assert detail.get("type") and detail.get("value") is not None


def event_id(message: SyslogMessage) -> str:
    return message.xml.find("EventIdentification/EventID").get("csd-code")


class SyslogReceiver:
    """Listens on 127.0.0.1 (UDP, or TLS when given a server context) in a thread."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.messages: list[SyslogMessage] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        kind = socket.SOCK_STREAM if tls else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        if tls:
            self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> SyslogReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _accept(self, data: bytes) -> None:
        try:
            self.messages.append(parse(data))
        except (AssertionError, ET.ParseError, ValueError, TypeError) as exc:
            self.errors.append(f"{exc!r}: {data[:200]!r}")

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.tls is None:
                    data, _ = self.sock.recvfrom(65535)
                    self._accept(data)
                    continue
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._read_frames, args=(client,), daemon=True).start()

    def _read_frames(self, client: socket.socket) -> None:
        try:
            client.settimeout(10)
            conn = self.tls.wrap_socket(client, server_side=True)
            buffer = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buffer += chunk
                while b" " in buffer:  # RFC 5425 4.3: MSG-LEN SP SYSLOG-MSG
                    length, _, rest = buffer.partition(b" ")
                    assert length.isdigit(), f"not an octet count: {length[:20]!r}"
                    if len(rest) < int(length):
                        break
                    self._accept(rest[:int(length)])
                    buffer = rest[int(length):]
        except (OSError, ssl.SSLError, AssertionError) as exc:
            self.errors.append(repr(exc))
        finally:
            client.close()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[SyslogMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.messages)
