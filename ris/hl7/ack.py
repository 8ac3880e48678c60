"""Minimal, dependency-free reading of MSH and building of an original-mode ACK.

Used where a message cannot (or need not) be parsed in full: to reject it with an AR that still
echoes its control ID (MSA-2) and swaps sender and receiver.
"""

from __future__ import annotations

import datetime as dt
import itertools

_counter = itertools.count(1)


def read_msh(message: bytes) -> dict[str, str]:
    """The MSH fields an ACK needs, read from raw bytes (ASCII-safe positions)."""
    text = message.decode("latin-1")
    first = text.split("\r", 1)[0].split("\n", 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return {}
    sep = first[3]
    fields = first.split(sep)
    # MSH-1 is the separator itself: fields[1] is MSH-2 (encoding characters).
    def get(n: int) -> str:
        return fields[n - 1] if n - 1 < len(fields) else ""
    return {
        "encoding": get(2),
        "sending_app": get(3),
        "sending_facility": get(4),
        "receiving_app": get(5),
        "receiving_facility": get(6),
        "message_type": get(9),
        "control_id": get(10),
        "processing_id": get(11),
        "version": get(12),
        "charset": get(18),
        "separator": sep,
    }


def build_ack(msh: dict[str, str], code: str, text: str = "", error_code: str = "") -> bytes:
    """An ACK with MSA-1 ``code``; for AE/AR an ERR segment with the code and ``text``."""
    sep = msh.get("separator") or "|"
    enc = msh.get("encoding") or "^~\\&"
    comp = enc[0] if enc else "^"
    now = dt.datetime.now().strftime("%Y%m%d%H%M%S")
    version = msh.get("version") or "2.5.1"
    control = f"ACK{now}{next(_counter):06d}"
    trigger = (msh.get("message_type") or "").split(comp)
    event = trigger[1] if len(trigger) > 1 else ""
    safe_text = text.replace(sep, " ").replace(comp, " ").replace("\r", " ")[:200]
    segments = [
        sep.join([
            "MSH", enc, msh.get("receiving_app", ""), msh.get("receiving_facility", ""),
            msh.get("sending_app", ""), msh.get("sending_facility", ""), now, "",
            f"ACK{comp}{event}{comp}ACK" if event else "ACK", control,
            msh.get("processing_id") or "P", version,
        ]),
        sep.join(["MSA", code, msh.get("control_id", ""), safe_text]),
    ]
    if code != "AA" and (error_code or text):
        if version.startswith("2.5") or version.startswith("2.6"):
            segments.append(sep.join([
                "ERR", "", "", f"{error_code}{comp}{safe_text}{comp}HL70357", "E",
                "", "", "", safe_text,
            ]))
        else:
            code = f"{error_code}&{safe_text}&HL70357"
            segments.append(sep.join(["ERR", f"{comp}{comp}{comp}{code}"]))
    return "\r".join(segments).encode("utf-8") + b"\r"
