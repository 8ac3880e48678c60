"""The UPS-RS event channel (PS3.18 11.x, "Open Event Channel"; PS3.4 CC.2.4 event reports):
a WebSocket listener of its own (``ris events``) that sends each subscribed AE the UPS event
reports of its workitems.

Why its own listener: the web listener is WSGI (gunicorn's threaded workers), which holds no
long-lived connection, and a state change happens in any process (a web worker's claim, the
DICOM listener's MPPS, the HL7 listener's cancel). So the channel reads what happened from the
audit trail, which every service writes in its own transaction: nothing is added to the write
path, and an event is sent only for a change that committed. It polls every
RIS_UPS_EVENTS_POLL_MS and sends:

- a UPS State Report (Event Type ID 1) when a step's UPS state changes (a new workitem is
  SCHEDULED, a claim IN PROGRESS, COMPLETED, CANCELED), and to a new workitem subscriber its
  workitem's current state (PS3.4 CC.2.3.1: the initial report), also each time its channel
  opens (so a subscriber that was away learns the state it missed);
- a UPS Cancel Requested (2) when a claimed workitem's cancellation is requested;
- a UPS Progress Report (3) when its performer updates the progress.

Each message is one DICOM JSON object (PS3.18 F.2). An AE whose channel is closed misses the
reports of that time (ris keeps no per-subscriber queue); on reconnecting it searches the
workitems for their current state.

A client opens ``ws://<host>:<port>/subscribers/<AE title>`` with the REST API's token in the
``Authorization`` header; a device's account may open only its own AE's channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections import defaultdict
from http import HTTPStatus
from urllib.parse import unquote

from django.db import close_old_connections
from django.utils import timezone
from rest_framework.authtoken.models import Token
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from ris.roles import ANY_ROLE, has_role
from worklist import selectors, ups
from worklist.states import UPS_STATE_OF_STEP

logger = logging.getLogger("dicomweb.events")

_PATH = re.compile(r"^(?:/dicomweb)?(?:/ws)?/subscribers/([^/?]+)/?(?:\?.*)?$")
#: How far back each poll looks for rows committed late (PostgreSQL assigns keys and times
#: before commit, so a row may appear below the last key read).
_WINDOW = dt.timedelta(seconds=15)


def _authorised_ae(authorization: str, ae_title: str) -> str | None:
    """Why the token may not open this AE's channel, or None when it may."""
    close_old_connections()
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() not in ("token", "bearer") or not key:
        return "Authorization: Token <key> is required"
    token = Token.objects.select_related("user").filter(key=key.strip()).first()
    if token is None or not token.user.is_active:
        return "the token is not valid"
    device = selectors.device_for_user(token.user)
    if device is not None:
        return None if device.ae_title == ae_title else f"this account stands for {device.ae_title}"
    return None if has_role(token.user, *ANY_ROLE) else "this account has no ris role"


class EventChannel:
    """The open channels by AE title, and the poller that fills them."""

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.channels: dict[str, set[ServerConnection]] = defaultdict(set)
        #: keys of the audit rows read, kept twice the look-back window
        self._sent: dict[int, float] = {}
        self._cursor: int | None = None
        #: when each AE's latest channel opened: its subscriptions before that were reported
        #: by ``current_states`` already
        self.opened: dict[str, dt.datetime] = {}

    # --- the WebSocket side ---------------------------------------------------------------

    async def process_request(self, connection: ServerConnection, request):
        match = _PATH.match(request.path)
        if match is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not an event channel\n")
        refusal = await asyncio.to_thread(
            _authorised_ae, request.headers.get("Authorization", ""), unquote(match.group(1))
        )
        if refusal is not None:
            return connection.respond(HTTPStatus.FORBIDDEN if "account" in refusal
                                      else HTTPStatus.UNAUTHORIZED, refusal + "\n")
        return None

    async def handler(self, connection: ServerConnection) -> None:
        ae_title = unquote(_PATH.match(connection.request.path).group(1))
        self.opened[ae_title] = timezone.now()
        self.channels[ae_title].add(connection)
        try:
            for message in await asyncio.to_thread(self.current_states, ae_title):
                await connection.send(message)
            await connection.wait_closed()
        finally:
            self.channels[ae_title].discard(connection)
            if not self.channels[ae_title]:
                del self.channels[ae_title]

    def current_states(self, ae_title: str) -> list[str]:
        """A State Report of each workitem the AE subscribed to, sent when its channel opens:
        the initial report of a subscription made before (PS3.4 CC.2.3.1), and after a
        reconnection the state of what it may have missed."""
        close_old_connections()
        out = []
        for subscription in selectors.ups_workitem_subscriptions(ae_title):
            state = UPS_STATE_OF_STEP.get(subscription.step.status)
            if state is not None:
                report = ups.event_report(ups.workitem_uid(subscription.step_id),
                                          ups.STATE_REPORT, {"state": state})
                out.append(_message(report))
        return out

    # --- the trail side -------------------------------------------------------------------

    def collect(self, listening: set[str]) -> list[tuple[str, str]]:
        """The (AE title, message) pairs of the trail's new rows, for the AEs listening.

        New rows are those after the last key read; a transaction that committed late (its key
        below that) is found by a look back over the last seconds, skipping keys already sent.
        """
        close_old_connections()
        if self._cursor is None:
            self._cursor = selectors.last_audit_pk()  # history is not replayed
        fresh = selectors.ups_event_sources(after_pk=self._cursor)
        late = [pk for pk in selectors.ups_event_source_pks(
            since=timezone.now() - _WINDOW, up_to_pk=self._cursor) if pk not in self._sent]
        if late:
            fresh = selectors.ups_event_sources(pks=late) + fresh
        if fresh:
            self._cursor = max(self._cursor, max(row.pk for row in fresh))
        clock = time.monotonic()
        for row in fresh:
            self._sent[row.pk] = clock
        for pk in [pk for pk, at in self._sent.items() if clock - at > 2 * _WINDOW.total_seconds()]:
            del self._sent[pk]
        if not listening:
            return []
        out: list[tuple[str, str]] = []
        for row in fresh:
            try:
                out.extend(self._reports(row, listening))
            except Exception:  # noqa: BLE001 - one odd row must not stop the channel
                logger.exception("UPS event from audit row %s not sent", row.pk)
        return out

    def _reports(self, row, listening: set[str]) -> list[tuple[str, str]]:
        if row.object_type == "worklist.UpsSubscription":
            subscription = selectors.ups_subscription(int(row.object_id))
            if subscription is None or subscription.step is None:
                return []
            if subscription.ae_title not in listening or row.at < self.opened.get(
                subscription.ae_title, row.at
            ):
                return []
            state = UPS_STATE_OF_STEP.get(subscription.step.status)
            if state is None:
                return []
            report = ups.event_report(ups.workitem_uid(subscription.step_id), ups.STATE_REPORT,
                                      {"state": state})
            return [(subscription.ae_title, _message(report))]
        step = selectors.step_by_pk(int(row.object_id))
        if step is None:
            return []
        uid = ups.workitem_uid(step.pk)
        if row.action == "step.ups_progress":
            report = ups.event_report(uid, ups.PROGRESS_REPORT, row.after or {})
        elif row.action == "step.ups_cancel_requested":
            report = ups.event_report(uid, ups.CANCEL_REQUESTED, row.after or {})
        else:
            before = UPS_STATE_OF_STEP.get((row.before or {}).get("status"))
            after = UPS_STATE_OF_STEP.get((row.after or {}).get("status"))
            if after is None or after == before:
                return []
            report = ups.event_report(uid, ups.STATE_REPORT, {"state": after})
        message = _message(report)
        # A change made before the subscription is not reported (the poll may read it after
        # the AE subscribed): the subscriber learnt that state from its initial report.
        return [
            (subscription.ae_title, message)
            for subscription in selectors.ups_subscriptions_of(step)
            if subscription.ae_title in listening and subscription.created_at <= row.at
            and _matches(subscription, step.pk)
        ]

    async def poll(self, stopped: asyncio.Event) -> None:
        while not stopped.is_set():
            try:
                reports = await asyncio.to_thread(self.collect, set(self.channels))
            except Exception:  # noqa: BLE001 - a database outage: try again next poll
                logger.exception("UPS event channel could not read the audit trail")
                reports = []
            for ae_title, message in reports:
                for connection in list(self.channels.get(ae_title, ())):
                    try:
                        await connection.send(message)
                    except ConnectionClosed:
                        pass
            try:
                await asyncio.wait_for(stopped.wait(), self.poll_seconds)
            except TimeoutError:
                pass


def _matches(subscription, step_pk: int) -> bool:
    """A filtered global subscription includes only the workitems its keys match (the UPS
    search's engine, PS3.4 CC.2.3.1)."""
    if subscription.step_id is not None or not subscription.filter_keys:
        return True
    identifier, _ = ups.mwl_identifier(subscription.filter_keys)
    return bool(selectors.workitem_rows(identifier, pks=[step_pk], limit=1))


def _message(report) -> str:
    return json.dumps(report.to_json_dict())


async def run(host: str, port: int, *, poll_seconds: float, stopped: asyncio.Event,
              ready=None) -> None:
    """Serve the event channel until ``stopped`` is set."""
    channel = EventChannel(poll_seconds)
    async with serve(channel.handler, host, port, process_request=channel.process_request,
                     ping_interval=20, max_size=2**16):
        if ready is not None:
            ready()
        await channel.poll(stopped)
