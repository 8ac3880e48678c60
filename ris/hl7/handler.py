"""Entry point of every inbound HL7 message: bytes in, ACK bytes out, after the commit.

The order of things is what makes the interface safe:

1. A message whose (sender, MSH-10) is already stored as processed or error is a resend: it gets
   the ACK it got the first time, byte for byte, and changes nothing (a DUPLICATE row records it).
2. Otherwise it is decoded with its own character set (MSH-18, else the sender's default, else
   ``RIS_HL7_DEFAULT_CHARSET``), parsed, checked, and applied by ``ris.hl7.mapping`` inside ONE
   transaction that also stores the raw message and its ACK. A domain refusal rolls back the
   message's changes (savepoint) but keeps the stored message as ERROR, answered AE.
3. The ACK is returned only after that transaction committed: an AA is never sent for something a
   crash could still lose. If the database itself fails, the answer is an AR and nothing is stored,
   so the HIS keeps the message and resends it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import threading
import time

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from ris.hl7 import ack as acks
from ris.hl7 import charsets, er7, mapping, responses
from ris.hl7.ack import ERROR_CODES, build_ack
from ris.models import HL7Sender, InboundMessage
from worklist import services
from worklist.audit import Actor, record_access
from worklist.errors import DomainError
from worklist.peers import normalise_subject

logger = logging.getLogger("ris.hl7")
Status = InboundMessage.Status

_SENDER_CACHE_SECONDS = 10.0
#: Tries of one message's transaction when a concurrent one conflicted with it.
_ATTEMPTS = 3
_sender_cache: dict[tuple[str, str], tuple[float, tuple[str, bool, bool, str]]] = {}
#: (read at, {normalised certificate subject: [(application, facility), ...]})
_certificate_owners: tuple[float, dict[str, list[tuple[str, str]]]] = (float("-inf"), {})
#: MSH-10 is stored whole (the resend look-up compares it whole); a longer one is refused.
CONTROL_ID_MAX = InboundMessage._meta.get_field("control_id").max_length


#: SQLite lets one writer in at a time. HL7 connections of this process queue here and are let in
#: as soon as the previous commit is done, instead of waiting in SQLite's busy handler, which
#: sleeps 1, 2, 5, 10... ms between tries (with 4 busy connections that cost a fifth of the rate).
_sqlite_writer = threading.Lock()


_QUOTED = re.compile(r"'[^']*'")


def without_values(text: str) -> str:
    """An error text for the log: the values it quotes (a malformed PID-7, a segment that is
    not one, a name) may be patient data, which stays out of the log above DEBUG; the ACK, the
    stored message and the DEBUG line keep them."""
    return _QUOTED.sub("'…'", text)


def _writer_turn() -> contextlib.AbstractContextManager:
    return _sqlite_writer if connection.vendor == "sqlite" else contextlib.nullcontext()


def sender_key(header: dict[str, str]) -> str:
    return f"{header.get('sending_app', '')}|{header.get('sending_facility', '')}"[:140]


def _sender_options(header: dict[str, str]) -> tuple[str, bool, bool, str]:
    """(default charset, derive control ID, application response, certificate subject) of the
    HL7Sender of this
    MSH-3/MSH-4 (cached briefly: it is read per message)."""
    key = (header.get("sending_app", ""), header.get("sending_facility", ""))
    now = time.monotonic()
    cached = _sender_cache.get(key)
    if cached is not None and now - cached[0] < _SENDER_CACHE_SECONDS:
        return cached[1]
    row = (
        HL7Sender.objects.filter(application=key[0], facility__in=[key[1], ""])
        .order_by("-facility")
        .values_list(
            "default_charset", "derive_control_id", "application_response", "certificate_subject"
        )
        .first()
    )
    options = (
        (row[0], row[1], row[2], normalise_subject(row[3])) if row else ("", False, False, "")
    )
    _sender_cache[key] = (now, options)
    return options


def _owners_of(subject: str) -> list[tuple[str, str]]:
    """The senders (MSH-3, MSH-4) whose certificate has this subject (all read at most every
    few seconds; only connections with a client certificate ask)."""
    global _certificate_owners
    read_at, owners = _certificate_owners
    if time.monotonic() - read_at > _SENDER_CACHE_SECONDS:
        owners = {}
        rows = HL7Sender.objects.exclude(certificate_subject="").values_list(
            "certificate_subject", "application", "facility")
        for owned, application, facility in rows:
            owners.setdefault(normalise_subject(owned), []).append((application, facility))
        _certificate_owners = (time.monotonic(), owners)
    return owners.get(subject, [])


def certificate_refusal(header: dict[str, str], subject: str) -> str:
    """Why a message is refused for the TLS client certificate it came over ("" if it is not):
    a sender with a certificate subject is accepted only over that certificate, and a
    certificate that names senders only for their MSH-3/MSH-4."""
    required = _sender_options(header)[3]
    if required and required != subject:
        return "this sender is accepted only over its TLS client certificate"
    if subject:
        owners = _owners_of(subject)
        app, facility = header.get("sending_app", ""), header.get("sending_facility", "")
        if owners and not any(a == app and f in (facility, "") for a, f in owners):
            return f"the TLS client certificate belongs to sender {owners[0][0]}, not {app}"
    return ""


def _sender_default_charset(header: dict[str, str]) -> str:
    return _sender_options(header)[0]


def derived_control_id(message: bytes) -> str:
    """A stable MSH-10 for a sender that leaves it empty: the same bytes resent give the same ID
    (and so the original ACK). ``#`` cannot start a control ID the sender chose itself in the
    feeds this option is for, so the two never collide."""
    return "#" + hashlib.sha256(message).hexdigest()[:40]


def charset_of(header: dict[str, str]) -> str:
    return (
        header.get("charset")
        or _sender_default_charset(header)
        or settings.RIS_HL7_DEFAULT_CHARSET
    )


def _reset_broken_connection() -> None:
    """Drop this thread's database connection only if it broke (database restarted...).

    Not ``close_old_connections()``: with SQLite's CONN_MAX_AGE of 0 it would close and reopen
    the connection for every message, which cost more than the message itself.
    """
    if connection.connection is not None and connection.errors_occurred:
        if not connection.is_usable():
            connection.close()
        connection.errors_occurred = False


def handle(message: bytes, peer: str, certificate_subject: str = "") -> bytes:
    """Process one message from the MLLP listener; return the ACK to send (after commit).
    ``certificate_subject``: of the connection's verified TLS client certificate, "" if none."""
    _reset_broken_connection()
    # A NUL (refused in decode_and_parse) in the header would reach PostgreSQL in the resend
    # lookup and the message log, which take none in text: there it is U+FFFD.
    header = {key: value.replace("\x00", "\ufffd")
              for key, value in er7.read_header(message).items()}
    if not header:
        return _reject(message, header, peer, "100", "message does not start with an MSH segment")
    if not header.get("control_id"):
        try:
            derive = _sender_options(header)[1]
        except Exception:  # noqa: BLE001 - the database is down: the refusal below is an AR too
            derive = False
        if not derive:
            return _reject(message, header, peer, "101", "MSH-10 (message control ID) is empty")
        header = {**header, "control_id": derived_control_id(message), "sent_control_id": ""}
    if len(header["control_id"]) > CONTROL_ID_MAX:
        # Not stored: a truncated key would make resends of different messages collide.
        logger.warning("HL7 message from %s refused: MSH-10 longer than %s", peer, CONTROL_ID_MAX)
        return replies(
            header, "AR",
            f"MSH-10 (message control ID) is {len(header['control_id'])} characters long; ris "
            f"keeps at most {CONTROL_ID_MAX}: not processed, send a shorter control ID",
            "102", committed=False,
        )
    try:
        refusal = certificate_refusal(header, certificate_subject)
        if refusal:
            services.peer_authentication_failed(
                actor=Actor.hl7(sender_key(header)), peer=peer, reason=refusal)
            return _reject(message, header, peer, "207", f"not authenticated: {refusal}")
        original = _original(header)
        if original is not None:
            return _duplicate(original, message, header, peer)
        return _process(message, header, peer)
    except Exception:  # noqa: BLE001 - the database is down or broken: the HIS must resend
        logger.exception("HL7 %s from %s could not be stored", header.get("control_id"), peer)
        return replies(header, "AR", "ris could not store the message; resend it later", "207",
                       committed=False, stored=False)


def _wants_content(header: dict[str, str]) -> bool:
    try:
        return _sender_options(header)[2]
    except Exception:  # noqa: BLE001 - the database is down: a plain acknowledgement then
        return False


def replies(
    header: dict[str, str],
    code: str,
    text: str = "",
    error_code: str = "",
    *,
    committed: bool,
    stored: bool = True,
    outcome: mapping.Outcome | None = None,
    message: er7.Message | None = None,
) -> bytes:
    """Everything ris answers to one message (``ack.join_replies``; empty: nothing), by mode.

    Original mode: one acknowledgement, after the commit; for orders the application response
    with its content (``ris.hl7.responses``) when the HL7Sender asks for it. So is a request
    for an accept acknowledgement alone (``ack.accept_only``: MSH-15 AL, MSH-16 NE). Enhanced mode
    (MSH-15/16, HL7 v2.5.1 2.9.3): for a committed message an accept acknowledgement CA when
    MSH-15 asks for one, then the application acknowledgement (AA, AE: for orders with the
    response group) when MSH-16 asks for it. A message not committed (refused as AR, or the
    database failed: ``stored`` False) gets CR or CE when MSH-15 asks for errors, else the AR
    when MSH-16 does: it was never processed, so there is nothing more to say.
    """
    warnings = outcome.warnings if outcome else ()
    kind, _, event = (header.get("message_type") or "").partition(header.get("component") or "^")
    is_order = (kind, event.split(header.get("component") or "^")[0]) in (
        acks.APPLICATION_RESPONSE_TYPES
    )

    def application(content: bool) -> bytes:
        response = None
        if content and is_order:
            if code == "AA" and outcome is not None:
                response = responses.accepted(
                    header, list(zip(outcome.orders, outcome.order_controls, strict=True))
                )
            else:
                response = responses.refused(header, message)
        return build_ack(header, code, text, error_code, warnings=warnings, response=response)

    conditions = acks.conditions(header) if header else None
    if conditions is None or acks.accept_only(conditions):
        return application(content=is_order and _wants_content(header))
    accept, application_condition = conditions
    sent = []
    if committed:
        if acks.wanted(accept, success=True):
            sent.append(build_ack(header, "CA", accept=True))
        if acks.wanted(application_condition, success=code == "AA"):
            sent.append(application(content=True))
    elif acks.wanted(accept, success=False):
        sent.append(build_ack(header, "CE" if not stored else "CR", text, error_code, accept=True))
    elif acks.wanted(application_condition, success=False):
        sent.append(application(content=True))
    return acks.join_replies(sent)


def _original(header: dict[str, str]) -> InboundMessage | None:
    """The stored message this one is a resend of (same sender and MSH-10), if any.

    Runs for every message and almost never finds one: the look-up is one fixed SQL statement
    on a cursor (0.02 ms, against 0.37 ms for the same query through the ORM, ~7% of a NW), and
    the model is loaded only for a real resend.
    """
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {quote('id')} FROM {quote(InboundMessage._meta.db_table)} "
        f"WHERE {quote('sender')} = %s AND {quote('control_id')} = %s "
        f"AND {quote('status')} NOT IN (%s, %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [sender_key(header), header["control_id"], Status.DUPLICATE, Status.REJECTED]
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return InboundMessage.objects.only("id", "ack", "ack_code").get(pk=row[0])


def _duplicate(original: InboundMessage, raw: bytes, header: dict, peer: str) -> bytes:
    _log_message(
        raw,
        header,
        peer,
        status=Status.DUPLICATE,
        ack_code=original.ack_code,
        ack=bytes(original.ack),
        duplicate_of=original,
    )
    logger.info("HL7 %s from %s is a resend of message %s", header["control_id"], peer, original.pk)
    return bytes(original.ack)


def _reject(raw: bytes, header: dict, peer: str, code: str, text: str) -> bytes:
    """AR: not processed (the sender may fix and resend). Stored for the record if possible."""
    ack = replies(header, "AR", text, code, committed=False)
    try:
        with transaction.atomic():  # a failure here must not break the caller's transaction
            _log_message(raw, header, peer, status=Status.REJECTED, ack_code="AR", ack=ack,
                         error_code=code, error=text)
    except Exception:  # noqa: BLE001 - storing a rejected message is best effort
        logger.exception("could not store rejected HL7 message from %s", peer)
    logger.warning("HL7 message %r from %s rejected: %s", header.get("control_id"), peer,
                   without_values(text))
    logger.debug("HL7 message %r rejected: %s", header.get("control_id"), text)
    return ack


def decode_and_parse(raw: bytes, header: dict[str, str]) -> tuple[str, er7.Message]:
    """(charset used, parsed message), or raise ``mapping.HL7Error`` (AR) naming the problem."""
    charset = charset_of(header)
    try:
        codec = charsets.codec_for(charset)
    except charsets.UnknownCharset as exc:
        raise mapping.HL7Error(str(exc), "102", "AR") from None
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise mapping.HL7Error(
            f"byte {exc.start} is not valid {charset!r} ({codec}): set MSH-18 to the character "
            "set the message is written in, or configure the sender's default",
            "102",
            "AR",
        ) from None
    if "\x00" in text:
        # No HL7 v2 data type holds one (binary data goes as \Xhh\ or Base64); and PostgreSQL
        # refuses it in any text column, which would otherwise fail the store and make the
        # sender resend for ever.
        raise mapping.HL7Error(
            f"character {text.index(chr(0))} is NUL (0x00), which no HL7 v2 field may hold: "
            "not processed", "102", "AR")
    try:
        message = er7.parse(text, codec)
    except er7.ParseError as exc:
        raise mapping.HL7Error(str(exc), exc.code, "AR") from None
    mapping.check_supported(message)
    return charset, message


def _apply(message: er7.Message, header: dict) -> tuple[str, str, str, mapping.Outcome | None]:
    """(ACK code, 0357 code, text, outcome) of applying the message inside a savepoint."""
    actor = Actor.hl7(sender_key(header))
    try:
        with transaction.atomic():
            outcome = mapping.apply(message, actor=actor)
    except mapping.HL7Error as exc:
        return exc.ack, exc.code, exc.text, None
    except DomainError as exc:
        return "AE", ERROR_CODES[exc.code], exc.message, None
    except IntegrityError as exc:
        raise exc  # a concurrent duplicate of this very message: handled by the caller
    except Exception as exc:  # noqa: BLE001 - a bug must not lose the message: keep it as ERROR
        logger.exception("HL7 message %s could not be applied", header.get("control_id"))
        return "AE", "207", f"ris internal error: {exc.__class__.__name__}: {exc}", None
    return "AA", "", outcome.note, outcome


def _process(raw: bytes, header: dict, peer: str) -> bytes:
    try:
        charset, message = decode_and_parse(raw, header)
    except mapping.HL7Error as exc:
        return _reject(raw, header, peer, exc.code, exc.text)
    kind, event, _ = message.message_type
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with _writer_turn(), transaction.atomic():
                code, error_code, text, outcome = _apply(message, header)
                if code == "AR":
                    transaction.set_rollback(True)
                    ack = b""
                else:
                    ack = replies(header, code, text, error_code, committed=True,
                                  outcome=outcome, message=message)
                    _store(raw, header, peer, charset, code, ack, error_code, text, outcome,
                           f"{kind}^{event}")
            break
        except IntegrityError:
            # Either the same sender + MSH-10 committed meanwhile on another connection (a
            # resend), or a concurrent message created the same patient first, or a cached
            # catalogue row was deleted meanwhile: apply again, now seeing the current rows.
            mapping.forget_catalogue()
            original = _original(header)
            if original is not None:
                return _duplicate(original, raw, header, peer)
            if attempt == _ATTEMPTS:
                raise
        except OperationalError:
            # PostgreSQL chose this transaction as a deadlock victim: nothing was kept, retry.
            if attempt == _ATTEMPTS:
                raise
        time.sleep(0.02 * attempt)
    if code == "AR":
        return _reject(raw, header, peer, error_code, text)
    if code != "AA":
        logger.warning("HL7 %s %s from %s: %s %s", kind, header["control_id"], peer, code,
                       without_values(text))
        logger.debug("HL7 %s %s: %s %s", kind, header["control_id"], code, text)
    return ack


def _store(raw, header, peer, charset, code, ack, error_code, text, outcome, message_type):
    patient = outcome.patient if outcome else None
    orders = outcome.orders if outcome else []
    _log_message(
        raw,
        header,
        peer,
        status=Status.PROCESSED if code == "AA" else Status.ERROR,
        ack_code=code,
        ack=ack,
        charset=charset,
        message_type=message_type,
        error_code=error_code,
        error=text if code != "AA" else "",
        patient=patient,
        order=orders[0] if orders else None,
        links=outcome.links if outcome else [],
    )


def _log_message(
    raw: bytes,
    header: dict[str, str],
    peer: str,
    *,
    status: str,
    ack_code: str,
    ack: bytes,
    charset: str | None = None,
    message_type: str | None = None,
    **fields,
) -> InboundMessage:
    """Store one received message with its outcome: the message log is the HL7 adapter's own
    record (processed, refused, resent), so it is written here and not by a domain service.

    The header's values are cut to their columns here, in one place: a header ris could not
    read still gets a row (sender and control ID empty).
    """
    if message_type is None:
        message_type = header.get("message_type", "")
    if charset is None:
        charset = header.get("charset", "")
    return InboundMessage.objects.create(
        sender=sender_key(header) if header else "",
        control_id=header.get("control_id", "")[:CONTROL_ID_MAX],
        message_type=message_type[:32],
        version=header.get("version", "")[:12],
        charset=charset[:32],
        peer=peer[:100],
        raw=raw,
        size=len(raw),
        status=status,
        ack_code=ack_code,
        ack=ack,
        processed_at=timezone.now(),
        **fields,
    )


def too_large(head: bytes) -> bytes:
    """AR for a frame over RIS_MLLP_MAX_MESSAGE_BYTES (only its first bytes are stored)."""
    limit = settings.RIS_MLLP_MAX_MESSAGE_BYTES
    return _reject(
        head,
        er7.read_header(head),
        "",
        "207",
        f"message larger than the maximum of {limit} bytes: not processed",
    )


def reprocess(message: InboundMessage, *, actor: Actor | None = None) -> InboundMessage:
    """Apply a stored ERROR message again (after the catalogue or the data was fixed).

    Nothing is sent to the HIS: it already had its AE. The stored ACK becomes the new outcome so
    that a later resend of the same MSH-10 gets the answer that now holds. Audited as
    ``hl7.reprocess`` with the outcome, by ``actor`` (the operator; the system when omitted).
    """
    if message.status != Status.ERROR:
        raise ValueError(f"message {message.pk} is {message.status}: only ERROR is reprocessed")
    raw = bytes(message.raw)
    header = er7.read_header(raw)
    with transaction.atomic():
        locked = InboundMessage.objects.select_for_update().get(pk=message.pk)
        if locked.status != Status.ERROR:
            return locked
        parsed = None
        try:
            charset, parsed = decode_and_parse(raw, header)
        except mapping.HL7Error as exc:
            code, error_code, text, outcome = exc.ack, exc.code, exc.text, None
        else:
            code, error_code, text, outcome = _apply(parsed, header)
        locked.reprocess_count += 1
        locked.processed_at = timezone.now()
        if code == "AR":
            locked.ack = replies(header, code, text, error_code, committed=False)
        else:
            locked.ack = replies(header, code, text, error_code, committed=True,
                                 outcome=outcome, message=parsed)
        locked.ack_code = code
        locked.error_code = error_code
        if code == "AA":
            locked.status = Status.PROCESSED
            locked.error = ""
            locked.patient = outcome.patient
            locked.order = outcome.orders[0] if outcome.orders else None
            locked.links = outcome.links
        else:
            locked.error = text
        locked.save()
        record_access(actor or Actor.system("hl7.reprocess"), "hl7.reprocess",
                      object_type=InboundMessage._meta.label, object_id=locked.pk,
                      detail=f"control id {locked.control_id}: {code}")
    return locked
