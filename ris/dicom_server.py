"""The one DICOM application entity of ris and the services it offers.

Verification is built in; the worklist (MWL C-FIND) and MPPS modules add their presentation
contexts and event handlers through ``RIS_DICOM_SERVICES``: each named module has
``register(ae) -> list[(event, handler)]``. pynetdicom runs each association in its own thread,
so every thread closes its database connection when its association ends.
"""

from __future__ import annotations

import importlib
import logging
import socket
import threading
import time

from django.conf import settings
from django.db import connection
from pynetdicom import AE, _config, evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from worklist.dimse import TRANSFER_SYNTAXES

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


class RisAssociationServer(ThreadedAssociationServer):
    """pynetdicom's server with a real listen backlog, Nagle off and quick ACKs on accepted
    sockets.

    Without TCP_NODELAY each small C-FIND response waits ~40 ms for the peer's delayed ACK
    (docs/BENCHMARKS.md, "Modality Worklist SCP"); without quick ACKs the same happens the other
    way round with SCUs that leave Nagle on (``QuickAckSocket``).
    """

    request_queue_size = 128
    daemon_threads = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.contexts = _SupportedContexts(self.contexts)

    def get_request(self):
        client, address = super().get_request()
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if type(client) is socket.socket and hasattr(socket, "TCP_QUICKACK"):  # Linux; not TLS
            client = QuickAckSocket(client.family, client.type, client.proto,
                                    fileno=client.detach())
        return client, address


def _close_db_connection(event: evt.Event) -> None:
    # Each association runs in its own thread with its own Django connection.
    connection.close()


def build_ae() -> tuple[AE, list]:
    ae = AE(ae_title=settings.RIS_AE_TITLE)
    ae.maximum_associations = settings.RIS_DICOM_MAX_ASSOCIATIONS
    ae.maximum_pdu_size = 0  # no limit on what we accept; the peer chooses
    ae.network_timeout = 60
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    ae.add_supported_context(Verification, TRANSFER_SYNTAXES)
    handlers: list = [(evt.EVT_CONN_CLOSE, _close_db_connection)]
    for module_name in settings.RIS_DICOM_SERVICES:
        module = importlib.import_module(module_name)
        handlers.extend(module.register(ae))
    return ae, handlers


def start(host: str, port: int) -> RisAssociationServer:
    ae, handlers = build_ae()
    server = ae.make_server(
        (host, port),
        ae_title=settings.RIS_AE_TITLE,
        evt_handlers=handlers,
        server_class=RisAssociationServer,
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
