"""PPS and storage-gateway figures for ``ris.metrics`` (registered in ``MppsConfig.ready``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Sum
from prometheus_client.core import GaugeMetricFamily, Metric

from mpps.models import PerformedProcedureStep


def mpps_metrics() -> Iterable[Metric]:
    steps = GaugeMetricFamily("ris_mpps_performed_steps",
                              "Performed procedure steps stored, by status", labels=["status"])
    for row in PerformedProcedureStep.objects.values("status").annotate(n=Count("id")):
        steps.add_metric([row["status"]], row["n"])
    yield steps


def spool_metrics() -> Iterable[Metric]:
    from mpps.forwarding.models import InstanceDelivery, SpooledInstance

    spooled = SpooledInstance.objects.filter(purged_at__isnull=True)
    totals = spooled.aggregate(n=Count("id"), size=Sum("size"))
    instances = GaugeMetricFamily("ris_gateway_spool_instances",
                                  "Instances in the gateway spool (not yet purged)")
    instances.add_metric([], totals["n"] or 0)
    size = GaugeMetricFamily("ris_gateway_spool_bytes", "Bytes of the instances in the spool")
    size.add_metric([], totals["size"] or 0)
    deliveries = GaugeMetricFamily("ris_gateway_deliveries",
                                   "Instance deliveries to PACS destinations, by state",
                                   labels=["destination", "state"])
    rows = (InstanceDelivery.objects.values("destination__name", "state")
            .annotate(n=Count("id")))
    for row in rows:
        deliveries.add_metric([row["destination__name"] or "", row["state"]], row["n"])
    yield from (instances, size, deliveries)
