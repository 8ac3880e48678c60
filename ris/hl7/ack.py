"""Original-mode acknowledgements (MSH, MSA, ERR), built from the header fields alone.

Built by hand rather than with hl7apy: an ACK is written for every message on the hot path, and
hl7apy takes ~2.6 ms to build and serialise one (docs/BENCHMARKS.md, "HL7 inbound"). The header is
read with ``er7.read_header`` so that even a message ris cannot parse gets an AR that echoes its
control ID (MSA-2) and swaps sender and receiver.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from ris.hl7 import charsets
from ris.hl7.er7 import Delimiters, escape, read_header
from worklist.errors import ErrorCode

_counter = itertools.count(1)

#: Messages whose acknowledgement HL7 defines as another structure than ACK: OMI^O23 is
#: answered by ORI^O24 (HL7 v2.5.1 4.4.10-4.4.11, "imaging order response"), also in
#: original mode; its RESPONSE group (PID, ORC, OBR, IPC) is optional and left out here.
RESPONSE_TYPES = {("OMI", "O23"): ("ORI", "O24", "ORI_O24")}

#: Each domain error code as an HL7 table 0357 error condition (ERR-3 in v2.5, ERR-1.4 before).
#: Every ErrorCode has one: tests/test_error_mappings.py fails when a new code lacks it.
ERROR_CODES: dict[ErrorCode, str] = {
    ErrorCode.NOT_FOUND: "204",  # unknown key identifier
    ErrorCode.DUPLICATE: "205",  # duplicate key identifier
    ErrorCode.UNKNOWN_PROCEDURE: "103",  # table value not found
    ErrorCode.INVALID_VALUE: "102",  # data type error
    # The message was understood and refused by a business rule: table 0357 has no closer code.
    ErrorCode.INVALID_TRANSITION: "207",
    ErrorCode.SCHEDULE_CONFLICT: "207",
    ErrorCode.OUTSIDE_OPENING_HOURS: "207",
    ErrorCode.IN_THE_PAST: "207",
    ErrorCode.NOTHING_TO_UNDO: "207",
}
ERROR_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


def read_msh(message: bytes) -> dict[str, str]:
    """Kept for callers of the foundation API: see ``er7.read_header``."""
    return read_header(message)


def _control_id() -> str:
    # MSH-10 is at most 20 characters (ST); 18 here, unique within the listener process.
    return f"A{dt.datetime.now():%y%m%d%H%M%S}{next(_counter) % 100000:05d}"


def build_ack(
    msh: dict[str, str],
    code: str,
    text: str = "",
    error_code: str = "",
    *,
    severity: str = "E",
    warnings: Sequence[tuple[str, str]] = (),
) -> bytes:
    """An ACK with MSA-1 ``code``; for AE/AR an ERR segment with the 0357 code and ``text``.

    ``warnings`` (0357 code, text) are values ris did not use in a message it applied: one ERR
    each, of severity W (ERR-4, v2.5 and later), after the error if there is one.

    Encoded in the message's own character set (MSH-18 echoed) so that a text naming a Chinese
    procedure or patient reads correctly on the HIS side; ASCII when the set is unknown.
    """
    sep = msh.get("separator") or "|"
    enc = msh.get("encoding") or "^~\\&"
    delims = Delimiters(
        field=sep,
        component=enc[0],
        repetition=enc[1] if len(enc) > 1 else "~",
        escape=enc[2] if len(enc) > 2 else "\\",
        subcomponent=enc[3] if len(enc) > 3 else "&",
    )
    comp, sub = delims.component, delims.subcomponent
    charset = msh.get("charset", "")
    try:
        codec = charsets.codec_for(charset)
    except charsets.UnknownCharset:
        codec, charset = "ascii", ""
    now = f"{dt.datetime.now():%Y%m%d%H%M%S}"
    version = msh.get("version") or "2.5.1"
    trigger = (msh.get("message_type") or "").split(comp)
    event = trigger[1] if len(trigger) > 1 else ""
    response = RESPONSE_TYPES.get((trigger[0], event))
    safe_text = escape(text.replace("\r", " ").replace("\n", " ")[:250], delims)
    msh_fields = [
        "MSH", enc, msh.get("receiving_app", ""), msh.get("receiving_facility", ""),
        msh.get("sending_app", ""), msh.get("sending_facility", ""), now, "",
        comp.join(response) if response else
        f"ACK{comp}{event}{comp}ACK" if event and version >= "2.4" else
        (f"ACK{comp}{event}" if event else "ACK"),
        _control_id(), msh.get("processing_id") or "P", version,
    ]
    if charset:
        msh_fields += ["", "", "", "", "", charset]
    segments = [
        sep.join(msh_fields),
        # MSA-2 echoes MSH-10 as sent (empty when ris derived a control ID for the sender).
        sep.join(["MSA", code, escape(msh.get("sent_control_id", msh.get("control_id", "")),
                                      delims), safe_text]),
    ]
    errors = []
    if code != "AA" and (error_code or text):
        errors.append((error_code or "207", safe_text, severity))
    errors += [
        (w_code, escape(w_text.replace("\r", " ").replace("\n", " ")[:250], delims), "W")
        for w_code, w_text in warnings
    ]
    for error_code, error_text, error_severity in errors:
        label = ERROR_TEXT.get(error_code, "")
        if version >= "2.5":
            segments.append(sep.join([
                "ERR", "", "", f"{error_code}{comp}{label}{comp}HL70357", error_severity,
                "", "", "", error_text,
            ]))
        else:
            # v2.3/2.4 ERR-1 (ELD): segment^sequence^field^code, the code a CE in subcomponents.
            # (These versions have no severity: a W is told by the AA it comes with.)
            sub_text = error_text.replace(sub, " ")
            segments.append(sep.join([
                "ERR", f"{comp}{comp}{comp}{error_code}{sub}{sub_text}{sub}HL70357",
            ]))
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")
