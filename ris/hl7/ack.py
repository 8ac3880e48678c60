"""Acknowledgements (MSH, MSA, ERR and an optional response group), built from the header fields.

Original mode (MSH-15 and MSH-16 both empty, HL7 v2.5.1 2.9.2): one ACK per message, after the
commit. Enhanced mode (either valued, 2.9.3): an accept acknowledgement (ACK with MSA-1 CA, CE or
CR) and an application acknowledgement (the message's response type, MSA-1 AA, AE or AR), each
only when the sender's condition (HL7 table 0155: AL always, NE never, ER on error, SU on
success) asks for it; both, when sent, follow the commit and travel on the same connection, the
accept acknowledgement first (``join_replies``). A request for accept acknowledgements alone
is answered as original mode (``accept_only``).

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
#: original mode; its RESPONSE group (PID, ORC, OBR, IPC) is optional and is only sent as an
#: application acknowledgement with content (``ris.hl7.responses``).
RESPONSE_TYPES = {("OMI", "O23"): ("ORI", "O24", "ORI_O24")}
#: The application responses of orders (HL7 v2.5.1 4.4.2, 4.4.8, 4.4.11; v2.3.1 4.2 ORR^O02):
#: sent, with the order's identifiers, when the sender asks for an application acknowledgement
#: in enhanced mode or its HL7Sender has "application response" set.
APPLICATION_RESPONSE_TYPES = {
    ("ORM", "O01"): ("ORR", "O02", "ORR_O02"),
    ("OMG", "O19"): ("ORG", "O20", "ORG_O20"),
    ("OMI", "O23"): ("ORI", "O24", "ORI_O24"),
}
#: HL7 table 0155 acknowledgement conditions
ALWAYS, NEVER, ON_ERROR, ON_SUCCESS = "AL", "NE", "ER", "SU"
#: Between two replies to one message, as the listener writes them inside one frame call: the
#: first reply's end block and the second's start block (MLLP, HL7 v2.5.1 Appendix C).
REPLY_SEPARATOR = b"\x1c\x0d\x0b"

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


def conditions(msh: dict[str, str]) -> tuple[str, str] | None:
    """(accept, application) conditions of MSH-15 and MSH-16 in enhanced mode; None: original.

    An empty one beside a valued one is taken as NE: a sender that asked for one kind only
    must not get a second, unexpected frame it would read as the answer to its next message.
    """
    accept = msh.get("accept_ack_type", "").strip().upper()
    application = msh.get("application_ack_type", "").strip().upper()
    if not accept and not application:
        return None
    return accept or NEVER, application or NEVER


def accept_only(conditions: tuple[str, str]) -> bool:
    """MSH-15 asks for accept acknowledgements, MSH-16 for no application acknowledgement.

    Answered as original mode (one ACK: AA, AE or AR, after the commit), not with a bare CA:
    MSH-15 AL / MSH-16 NE is what many feeds send by habit while they wait for an original
    ACK, and a CA would hide every refusal from them (the message kept as ERROR, the HIS never
    told). An enhanced-mode sender reads the AA as accepted too: it, like any ACK of ris,
    follows the commit.
    """
    accept, application = conditions
    return application == NEVER and accept != NEVER


def wanted(condition: str, *, success: bool) -> bool:
    """Whether an acknowledgement of table 0155 ``condition`` is sent for this outcome. An
    unknown condition is taken as AL: answering is the safe side of a sender's typo."""
    if condition == NEVER:
        return False
    if condition == ON_ERROR:
        return not success
    if condition == ON_SUCCESS:
        return success
    return True


def join_replies(replies: Sequence[bytes]) -> bytes:
    """Several replies to one message as the listener frames them in one go (stored so, so
    that a resend gets them again byte for byte); ``b""``: nothing is sent."""
    return REPLY_SEPARATOR.join(replies)


def split_replies(data: bytes) -> list[bytes]:
    """The replies ``join_replies`` put together (for display and for tests)."""
    return [reply for reply in bytes(data).split(REPLY_SEPARATOR) if reply]


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
    response: Sequence[str] | None = None,
    accept: bool = False,
) -> bytes:
    """An ACK with MSA-1 ``code``; for AE/AR an ERR segment with the 0357 code and ``text``.

    ``warnings`` (0357 code, text) are values ris did not use in a message it applied: one ERR
    each, of severity W (ERR-4, v2.5 and later), after the error if there is one.

    ``response``: the segments (ER7, the message's delimiters) of the response group of an
    order's application response; the message is then ORR^O02 / ORG^O20 / ORI^O24. ``accept``:
    an enhanced-mode accept acknowledgement, always a plain ACK (MSA-1 CA, CE or CR).

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
    kind = (trigger[0], event)
    if accept:
        response_type = None
    elif response is not None:
        response_type = APPLICATION_RESPONSE_TYPES.get(kind) or RESPONSE_TYPES.get(kind)
    else:
        response_type = RESPONSE_TYPES.get(kind)
    if response_type is not None and version < "2.4":
        response_type = response_type[:2]  # MSH-9.3 (message structure) exists from v2.4
    safe_text = escape(text.replace("\r", " ").replace("\n", " ")[:250], delims)
    msh_fields = [
        "MSH", enc, msh.get("receiving_app", ""), msh.get("receiving_facility", ""),
        msh.get("sending_app", ""), msh.get("sending_facility", ""), now, "",
        comp.join(response_type) if response_type else
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
    if code not in ("AA", "CA") and (error_code or text):
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
    if response_type is not None and response:
        segments.extend(response)
    return ("\r".join(segments) + "\r").encode(codec, errors="replace")
