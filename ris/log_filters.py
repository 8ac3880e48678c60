"""Logging filters: third-party records ris words differently or drops, and control characters
from peers escaped in every line."""

from __future__ import annotations

import logging


class PeerInputWithoutTraceback(logging.Filter):
    """pynetdicom logs input from a peer it cannot decode with ``LOGGER.exception``: a full
    traceback per undecodable AE title (``utils.decode_bytes``, once per codec tried) and per
    undecodable PDU (``dul._read_pdu_data``), for input that the association then refuses or
    aborts correctly. A hostile or broken peer would fill the log with them; one warning line
    with the exception's text says the same."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and (
            isinstance(exc, UnicodeError) or record.funcName == "_read_pdu_data"
        ):
            record.msg = "undecodable input from a peer (%s): %s"
            record.args = (type(exc).__name__, exc)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if c != 0x09}


class ControlCharactersEscaped(logging.Filter):
    """Writes control characters in a log line as ``\\xNN``. Peers put them in what ris logs
    (an AE title with an EOT, an HL7 field with a CR): raw, they corrupt the log file for the
    tools that read it, and a newline would let a peer forge a line of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = message.translate(_CONTROL)
        if escaped != message:
            record.msg, record.args = escaped, ()
        return True


class JobStillRunning(logging.Filter):
    """APScheduler warns each time an interval job is due while its previous run still works
    (``max_instances=1``): every second while the forwarding queue sends a 2,000-image study.
    That is how ris means its jobs to run (the next run takes what is left), not a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)
