"""Prometheus ``GET /metrics`` (prometheus-client): the state of the queues, read from the
database at each scrape, plus what the listener processes measured themselves.

ris runs one process per listener: a C-FIND's latency is measured in the DICOM process, the
scrape is answered by a web worker. ``ris serve`` gives its children one
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, emptied at each start), and
the web worker merges what every process wrote there. Everything that is a row (queue depth,
oldest job, HL7 messages by ACK code, PPS by status, spool) is counted in the database at scrape
time, so it is right whichever process or host did the work.

Collectors of other apps register here from their ``AppConfig.ready`` (``mpps`` adds PPS and
spool figures): ris never imports them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from django.db.models import Count, Min, Q
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ris.health import may_see_details
from ris.models import InboundMessage, OutboundJob

Collect = Callable[[], Iterable[Metric]]
_collectors: list[Collect] = []


def register(collect: Collect) -> None:
    """Add a function that yields metric families, read at every scrape."""
    if collect not in _collectors:
        _collectors.append(collect)


def outbound_metrics() -> Iterable[Metric]:
    depth = GaugeMetricFamily(
        "ris_outbound_queue_depth", "Outbound jobs not yet delivered, by kind, destination, state",
        labels=["kind", "destination", "state"],
    )
    oldest = GaugeMetricFamily(
        "ris_outbound_oldest_pending_seconds",
        "Age of the oldest job waiting for delivery (pending or in progress), per destination",
        labels=["kind", "destination"],
    )
    failed = GaugeMetricFamily(
        "ris_outbound_failed_jobs", "Jobs that failed for good and wait for an operator's retry",
        labels=["kind", "destination"],
    )
    now = timezone.now()
    open_states = [OutboundJob.State.PENDING, OutboundJob.State.IN_PROGRESS]
    rows = (OutboundJob.objects.filter(state__in=open_states)
            .values("kind", "destination", "state").annotate(n=Count("id")))
    for row in rows:
        depth.add_metric([row["kind"], row["destination"], row["state"]], row["n"])
    rows = (OutboundJob.objects.filter(state__in=open_states)
            .values("kind", "destination").annotate(first=Min("created_at")))
    for row in rows:
        oldest.add_metric([row["kind"], row["destination"]],
                          max((now - row["first"]).total_seconds(), 0.0))
    rows = (OutboundJob.objects.filter(state=OutboundJob.State.FAILED)
            .values("kind", "destination").annotate(n=Count("id")))
    for row in rows:
        failed.add_metric([row["kind"], row["destination"]], row["n"])
    yield from (depth, oldest, failed)


def hl7_metrics() -> Iterable[Metric]:
    messages = CounterMetricFamily(
        "ris_hl7_messages", "Inbound HL7 messages stored, by the ACK code ris answered",
        labels=["ack_code"],
    )
    rows = (InboundMessage.objects.exclude(ack_code="")
            .values("ack_code").annotate(n=Count("id")))
    for row in rows:
        messages.add_metric([row["ack_code"]], row["n"])
    errors = GaugeMetricFamily("ris_hl7_messages_in_error",
                               "Inbound HL7 messages in ERROR (waiting for a reprocess)")
    errors.add_metric([], InboundMessage.objects.filter(
        Q(status=InboundMessage.Status.ERROR)).count())
    yield from (messages, errors)


register(outbound_metrics)
register(hl7_metrics)


class _DatabaseCollector:
    def collect(self) -> Iterable[Metric]:
        for collect in list(_collectors):
            yield from collect()


def registry() -> CollectorRegistry:
    """The registry of one scrape: every process's own measurements and the database figures."""
    scrape = CollectorRegistry()
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and os.path.isdir(path):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(scrape, path=path)
    else:  # one process (tests, a listener run alone): its own metrics
        from prometheus_client import REGISTRY

        scrape.register(_Forward(REGISTRY))
    scrape.register(_DatabaseCollector())
    return scrape


class _Forward:
    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def collect(self) -> Iterable[Metric]:
        return self._source.collect()


@require_GET
def metrics_view(request):
    """Prometheus scrapes with ``Authorization: Bearer $RIS_HEALTH_TOKEN`` (or a staff session):
    destination names and volumes are for operators, not the world."""
    if not may_see_details(request):
        return HttpResponse("metrics need RIS_HEALTH_TOKEN\n", status=401,
                            content_type="text/plain", headers={"WWW-Authenticate": "Bearer"})
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
