"""The one DICOM application entity of ris and the services it offers.

Verification is built in; the worklist (MWL C-FIND) and MPPS modules add their presentation
contexts and event handlers through ``RIS_DICOM_SERVICES``: each named module has
``register(ae) -> list[(event, handler)]``. pynetdicom runs each association in its own thread,
so every thread closes its database connection when its association ends.
"""

from __future__ import annotations

import importlib
import logging
import select
import socket
import ssl
import struct
import threading
import time
from collections import Counter

from django.conf import settings
from django.db import DatabaseError, connection
from pynetdicom import AE, _config, evt
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from ris.health import health_ae_title
from worklist import selectors, services
from worklist.audit import Actor
from worklist.dimse import TRANSFER_SYNTAXES, new_ae
from worklist.mwl.scp import KnownAETitles
from worklist.peers import certificate_subject

logger = logging.getLogger("ris.dicom")

# pynetdicom pretty-prints every identifier unless told not to: 15% of a broad worklist query.
_config.LOG_HANDLER_LEVEL = "none"
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_REQUEST_IDENTIFIERS = False



class QuickAckSocket(socket.socket):
    """An accepted socket that acknowledges every segment at once.

    Many SCUs (DCMTK's tools among them, unless ``TCP_NODELAY=1`` is in their environment) leave
    Nagle's algorithm on and write one PDU in several pieces: the second piece waits for the ACK
    of the first, while Linux delays that ACK by up to 40 ms because the server is reading a PDU
    it cannot answer yet. Each association paid that stall once or twice (findscu: ~85 ms instead
    of ~45 ms). TCP_QUICKACK is not sticky on Linux, so it is re-armed before every read.
    """

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return super().recv(bufsize, flags)


class _SupportedContexts(list):
    """The server's presentation contexts, copied cheaply for each association.

    pynetdicom deep-copies them per association so that negotiation cannot touch the server's
    own; with every storage SOP class of the gateway (~170 contexts, ~2,200 transfer syntaxes)
    ``deepcopy`` took ~11 ms of each association. A fresh object per context with its own
    transfer syntax list isolates them as well: everything else in them is immutable.
    """

    def __deepcopy__(self, memo: dict) -> list[PresentationContext]:
        copies = []
        for context in self:
            copy = PresentationContext.__new__(PresentationContext)
            copy.__dict__.update(context.__dict__)
            copy._transfer_syntax = list(context._transfer_syntax)
            copies.append(copy)
        return copies


#: A-ASSOCIATE-RJ PDU (PS3.8 9.3.4): result 1 (rejected-permanent), source 1 (service-user),
#: reason 3 (calling-AE-title-not-recognized).
_REJECT_CALLING_AE = b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x03"
#: How long the map of devices authenticated by certificate is kept between reads.
_CERTIFICATES_SECONDS = 5.0


class _CertificateMap:
    """``selectors.device_certificates`` read at most every few seconds (one query per
    association otherwise); during a database outage the last map read is used."""

    def __init__(self) -> None:
        self._read_at = float("-inf")
        self._map: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._read_at > _CERTIFICATES_SECONDS:
                try:
                    self._map = selectors.device_certificates()
                    self._read_at = time.monotonic()
                except DatabaseError:
                    pass
                finally:
                    connection.close()
            return self._map


def certificate_refusal(calling_ae: str, subject: str, certificates: dict[str, str]) -> str:
    """Why an association from ``calling_ae`` with a client certificate of ``subject`` ("" for
    none) is refused, or "" when admitted: a device with a certificate subject is admitted only
    with that certificate, and a certificate that names a device only as that device's AE title
    (PS3.15 B.1: the TLS identity is the peer's authentication; the AE title is just a claim)."""
    required = certificates.get(calling_ae)
    if required and required != subject:
        return f"{calling_ae} is admitted only with its certificate ({required})"
    if subject:
        owners = sorted(ae for ae, owned in certificates.items() if owned == subject)
        if owners and calling_ae not in owners:
            return f"the certificate {subject} belongs to {owners[0]}, not {calling_ae}"
    return ""


#: A-ABORT PDU (PS3.8 9.3.8): source 2 (service provider), reason 6 (invalid PDU parameter value).
_ABORT_INVALID_PDU_PARAMETER = b"\x07\x00\x00\x00\x00\x04\x00\x00\x02\x06"
_A_ASSOCIATE_RQ = 0x01


class PduTooLarge(OSError):
    """A peer announced a PDU longer than ``RIS_DICOM_MAX_PDU_BYTES``."""


def _undecodable(pdu: bytearray) -> str | None:
    """Why pynetdicom refuses this A-ASSOCIATE-RQ, or None if it reads it. Decoded and made a
    primitive as its state machine does (AE-6): a value that decodes but cannot be a primitive
    (an even presentation context ID) raises there, in the DUL's thread, which then dies."""
    try:
        request = A_ASSOCIATE_RQ()
        request.decode(bytes(pdu))
        request.to_primitive()
    except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the PDU is invalid
        return f"{type(exc).__name__}: {str(exc)[:120]}"
    return None


def _abort_and_close(sock: socket.socket) -> None:
    try:
        sock.sendall(_ABORT_INVALID_PDU_PARAMETER)
    except OSError:
        pass


class RisAssociationSocket(AssociationSocket):
    """pynetdicom's association socket with two additions.

    * The bytes of the A-ASSOCIATE-RQ that the server already read before it created the
      association (``RisAssociationServer._read_association_request``) are handed to the DUL
      first.
    * A PDU whose header announces more than ``max_pdu_bytes`` is refused as soon as its header
      is read (A-ABORT, connection closed): the DUL would otherwise read and buffer whatever
      length the peer wrote in its 4-byte length field, up to 4 GiB per PDU.
    """

    _prefix: bytearray
    max_pdu_bytes: int

    @property
    def ready(self) -> bool:
        if self._prefix:
            return True
        return super().ready

    def recv(self, nr_bytes: int) -> bytearray:
        if nr_bytes > self.max_pdu_bytes:  # the DUL reads the 6-byte header, then the body
            peer = self.assoc.requestor.address_info
            logger.warning("%s:%s announced a PDU of %d bytes (limit %d): aborting",
                           peer.address, peer.port, nr_bytes, self.max_pdu_bytes)
            _abort_and_close(self.socket)
            raise PduTooLarge(f"PDU of {nr_bytes} bytes refused")
        if not self._prefix:
            return super().recv(nr_bytes)
        data = self._prefix[:nr_bytes]
        del self._prefix[:nr_bytes]
        if len(data) < nr_bytes:
            data.extend(super().recv(nr_bytes - len(data)))
        return data


class RisRequestHandler(RequestHandler):
    """Creates the association with ``RisAssociationSocket`` over the already-read request, and
    frees the connection's per-address slot when the association's thread ends."""

    def _create_association(self):
        sock, prefix = self.request
        self.request = sock
        assoc = super()._create_association()
        assoc_socket = assoc.dul.socket
        # pynetdicom builds a plain AssociationSocket here; ours only adds behaviour to it.
        assoc_socket.__class__ = RisAssociationSocket
        assoc_socket._prefix = prefix
        assoc_socket.max_pdu_bytes = self.server.max_pdu_bytes
        run, address = assoc.run, self.client_address[0]

        def run_and_release() -> None:
            try:
                run()
            finally:
                self.server.release_address(address)

        assoc.run = run_and_release
        return assoc


class RisAssociationServer(ThreadedAssociationServer):
    """pynetdicom's server with a real listen backlog, Nagle off, quick ACKs on accepted
    sockets, and limits against peers that connect without associating.

    Without TCP_NODELAY each small C-FIND response waits ~40 ms for the peer's delayed ACK
    (docs/BENCHMARKS.md, "Modality Worklist SCP"); without quick ACKs the same happens the other
    way round with SCUs that leave Nagle on (``QuickAckSocket``).

    pynetdicom creates the association (and counts it against ``maximum_associations``) the moment
    a TCP connection is accepted, and then waits the whole ACSE timeout for an A-ASSOCIATE-RQ: 50
    sockets that send nothing denied every modality service. Here a connection first lives in
    a plain thread that must receive a complete A-ASSOCIATE-RQ within ``first_pdu_timeout``
    seconds (PS3.8 9.1.1: the ARTIM timer), with a PDU length within ``max_pdu_bytes``; only then
    is the association created, answered at once and counted. Each source address may hold at
    most ``max_connections_per_address`` connections, associated or not (0: no limit).
    """

    request_queue_size = 128
    daemon_threads = True

    def __init__(
        self,
        *args,
        first_pdu_timeout: float = 5.0,
        max_connections_per_address: int = 0,
        max_pdu_bytes: int = 1024 * 1024,
        **kwargs,
    ) -> None:
        kwargs.setdefault("request_handler", RisRequestHandler)
        super().__init__(*args, **kwargs)
        self.contexts = _SupportedContexts(self.contexts)
        self.first_pdu_timeout = first_pdu_timeout
        self.max_connections_per_address = max_connections_per_address
        self.max_pdu_bytes = max_pdu_bytes
        self._per_address: Counter[str] = Counter()
        self._per_address_lock = threading.Lock()
        self._refused_addresses: set[str] = set()
        self._certificates = _CertificateMap()

    def server_bind(self) -> None:
        """pynetdicom's bind, with SO_REUSEPORT when several processes serve the port
        (RIS_DICOM_PROCESSES)."""
        if settings.RIS_DICOM_PROCESSES > 1:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def verify_request(self, request, client_address) -> bool:
        """Count the connection against its source address; refuse it (close at once) if the
        address already holds its share. One warning per address until it is below the limit."""
        address = client_address[0]
        with self._per_address_lock:
            limit = self.max_connections_per_address
            if limit and self._per_address[address] >= limit:
                if address not in self._refused_addresses:
                    self._refused_addresses.add(address)
                    logger.warning("%s holds %d DICOM connections (the limit): refusing more",
                                   address, limit)
                return False
            self._per_address[address] += 1
            self._refused_addresses.discard(address)
        return True

    def release_address(self, address: str) -> None:
        with self._per_address_lock:
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    def connections_from(self, address: str) -> int:
        with self._per_address_lock:
            return self._per_address[address]

    def process_request_thread(self, request, client_address) -> None:
        """Wait (in this connection's own thread) for the A-ASSOCIATE-RQ before pynetdicom sees
        the connection at all."""
        address = client_address[0]
        try:
            prefix = self._read_association_request(request, client_address)
        except Exception:  # noqa: BLE001 - a hostile peer must never reach the acceptor thread
            logger.exception("reading the first PDU from %s failed", address)
            prefix = None
        if prefix is not None and not self._authenticated(request, prefix, client_address):
            prefix = None
        if prefix is None:
            self.release_address(address)
            self.shutdown_request(request)
            return
        try:
            self.finish_request((request, prefix), client_address)
        except Exception:  # noqa: BLE001 - as socketserver does, but the slot must be freed
            self.handle_error(request, client_address)
            self.shutdown_request(request)
            self.release_address(address)

    def _authenticated(self, sock: socket.socket, prefix: bytearray, client_address) -> bool:
        """Check the A-ASSOCIATE-RQ's calling AE title against the peer's TLS certificate
        (``certificate_refusal``); refused: A-ASSOCIATE-RJ, a log line and an audit row."""
        certificates = self._certificates.get()
        if not certificates:
            return True
        calling = bytes(prefix[26:42]).decode("ascii", "replace").strip()
        peercert = sock.getpeercert() if isinstance(sock, ssl.SSLSocket) else None
        why = certificate_refusal(calling, certificate_subject(peercert), certificates)
        if not why:
            return True
        logger.warning("association from %s:%s refused: %s", client_address[0],
                       client_address[1], why)
        try:
            sock.sendall(_REJECT_CALLING_AE)
        except OSError:
            pass
        try:
            services.peer_authentication_failed(
                actor=Actor.ae(calling), peer=f"{client_address[0]}:{client_address[1]}",
                reason=why)
        except DatabaseError as exc:
            logger.warning("could not audit the refused association (database: %s)", exc)
        finally:
            connection.close()
        return False

    def _read_association_request(self, sock: socket.socket, client_address) -> bytearray | None:
        """The complete first PDU if it is an A-ASSOCIATE-RQ of an acceptable length received
        within ``first_pdu_timeout``; else None (the caller closes the connection)."""
        deadline = time.monotonic() + self.first_pdu_timeout
        if isinstance(sock, ssl.SSLSocket) and not _handshake(sock, client_address, deadline):
            return None
        data = bytearray()
        needed = 6
        while len(data) < needed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.info("%s:%s sent no A-ASSOCIATE-RQ within %ss: closing",
                            client_address[0], client_address[1], self.first_pdu_timeout)
                return None
            pending = sock.pending() if hasattr(sock, "pending") else 0
            if not pending:
                readable, _, _ = select.select([sock], [], [], remaining)
                if not readable:
                    continue
            try:
                chunk = sock.recv(min(65536, needed - len(data)))
            except (OSError, ValueError):
                return None
            if not chunk:
                return None
            data.extend(chunk)
            if needed == 6 and len(data) >= 6:
                pdu_type, _, length = struct.unpack(">BBL", bytes(data[:6]))
                if pdu_type != _A_ASSOCIATE_RQ or length > self.max_pdu_bytes:
                    logger.warning(
                        "%s:%s opened with PDU type 0x%02X of %d bytes (expected an "
                        "A-ASSOCIATE-RQ of at most %d): aborting",
                        client_address[0], client_address[1], pdu_type, length,
                        self.max_pdu_bytes)
                    _abort_and_close(sock)
                    return None
                needed = 6 + length
        why = _undecodable(data)
        if why:
            # pynetdicom would answer it with an A-ABORT too (PS3.8 9.2, AA-1), but then hold
            # the association, and this address's connection slot, for the whole ACSE timeout.
            logger.warning("%s:%s sent an A-ASSOCIATE-RQ that cannot be decoded (%s): aborting",
                           client_address[0], client_address[1], why)
            _abort_and_close(sock)
            return None
        return data

    def get_request(self):
        # Not pynetdicom's: it runs the TLS handshake here, in the one acceptor thread, where a
        # peer that connects and never speaks would stop every other connection.
        client, address = self.socket.accept()
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.ssl_context is not None:
            client = self.ssl_context.wrap_socket(client, server_side=True,
                                                  do_handshake_on_connect=False)
        elif hasattr(socket, "TCP_QUICKACK"):  # Linux
            client = QuickAckSocket(client.family, client.type, client.proto,
                                    fileno=client.detach())
        return client, address


def _handshake(sock: ssl.SSLSocket, client_address, deadline: float) -> bool:
    """The TLS handshake, within the first-PDU timeout (PS3.15 B.1: TLS before any PDU)."""
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        sock.do_handshake()
    except (OSError, ssl.SSLError) as exc:
        logger.info("TLS handshake with %s:%s failed: %s", client_address[0], client_address[1],
                    exc)
        return False
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass
    return True


def tls_context() -> ssl.SSLContext | None:
    """The server context of the DICOM TLS port, or None when no certificate is configured.

    BCP 195 (RFC 9325) as the DICOM profiles of PS3.15 B.9 ask: TLS 1.2 or newer, AEAD
    ciphers with forward secrecy only. With ``RIS_DICOM_TLS_CA`` a client certificate signed by
    that CA is required (mutual TLS); without it any client may connect over TLS.
    """
    if not settings.RIS_DICOM_TLS_CERT:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20")
    context.load_cert_chain(settings.RIS_DICOM_TLS_CERT, settings.RIS_DICOM_TLS_KEY or None)
    if settings.RIS_DICOM_TLS_CA:
        context.load_verify_locations(settings.RIS_DICOM_TLS_CA)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def _close_db_connection(event: evt.Event) -> None:
    # Each association runs in its own thread with its own Django connection.
    connection.close()


def build_ae() -> tuple[AE, list]:
    ae = new_ae(settings.RIS_AE_TITLE)
    ae.maximum_associations = settings.RIS_DICOM_MAX_ASSOCIATIONS
    # Announced in the A-ASSOCIATE-AC and enforced on every PDU received (RisAssociationSocket).
    ae.maximum_pdu_size = settings.RIS_DICOM_MAX_PDU_BYTES
    ae.network_timeout = 60
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    handlers: list = [(evt.EVT_CONN_CLOSE, _close_db_connection)]
    for module_name in settings.RIS_DICOM_SERVICES:
        module = importlib.import_module(module_name)
        handlers.extend(module.register(ae))
    allowed = ae._require_calling_aet
    if isinstance(allowed, KnownAETitles):  # RIS_DICOM_REQUIRE_KNOWN_AE: admit our own check
        allowed.also_allow(health_ae_title())
    # The Called AE Title must be ris's own (else A-ASSOCIATE-RJ, reason 7) when configured.
    ae.require_called_aet = settings.RIS_DICOM_REQUIRE_CALLED_AE
    return ae, handlers


def start(host: str, port: int, ssl_context: ssl.SSLContext | None = None,
          ae: AE | None = None, handlers: list | None = None) -> RisAssociationServer:
    """Listen on ``host:port`` (with TLS when ``ssl_context`` is given); a second port of the same
    AE shares its contexts and handlers (pass the ``ae`` and ``handlers`` of the first)."""
    if ae is None or handlers is None:
        ae, handlers = build_ae()
    server = ae.make_server(
        (host, port),
        ae_title=settings.RIS_AE_TITLE,
        evt_handlers=handlers,
        ssl_context=ssl_context,
        server_class=RisAssociationServer,
        first_pdu_timeout=settings.RIS_DICOM_FIRST_PDU_TIMEOUT_SECONDS,
        max_connections_per_address=settings.RIS_DICOM_MAX_CONNECTIONS_PER_ADDRESS,
        max_pdu_bytes=settings.RIS_DICOM_MAX_PDU_BYTES,
    )
    thread = threading.Thread(target=server.serve_forever, name="dicom-acceptor", daemon=True)
    thread.start()
    ae._servers.append(server)
    return server


def stop(server: RisAssociationServer, grace_seconds: float = 8.0) -> None:
    """Stop accepting, let running associations finish for a while, then abort the rest."""
    server.shutdown()
    deadline = time.monotonic() + grace_seconds
    while server.active_associations and time.monotonic() < deadline:
        time.sleep(0.05)
    for assoc in server.active_associations:
        logger.warning("aborting association with %s at shutdown", assoc.requestor.ae_title)
        assoc.abort()
