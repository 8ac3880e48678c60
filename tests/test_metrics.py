"""GET /metrics on a real ``ris serve``: Prometheus text, the C-FIND latency measured in the DICOM
child and merged by a web worker, queue and database figures, and no anonymous access."""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from ris.models import InboundMessage, OutboundJob
from tests.mwl.dcmtk import findscu

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]

TOKEN = "metrics-token"


def _get(service, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"{service.base_url}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_report_queues_messages_and_the_c_find_latency(new_ris_service):
    service = new_ris_service(RIS_HEALTH_TOKEN=TOKEN)
    service.wait_healthy(timeout=120)
    later = timezone.now() + dt.timedelta(hours=1)
    OutboundJob.objects.create(kind="dicom.store", destination="PACSX", payload={},
                               next_attempt_at=later,
                               created_at=timezone.now() - dt.timedelta(seconds=90))
    InboundMessage.objects.create(control_id="M-1", raw=b"MSH|", ack_code="AR",
                                  status=InboundMessage.Status.REJECTED)
    for _ in range(3):
        assert findscu(service.dicom_port, ["PatientID=NOBODY"]).final == "Success"

    assert _get(service, None)[0] == 401
    status, text = _get(service, TOKEN)
    assert status == 200
    samples = _samples(text)
    assert samples[("ris_mwl_cfind_seconds_count", ())] >= 3
    key = ("ris_outbound_queue_depth",
           (("destination", "PACSX"), ("kind", "dicom.store"), ("state", "PENDING")))
    assert samples[key] == 1
    oldest = samples[("ris_outbound_oldest_pending_seconds",
                      (("destination", "PACSX"), ("kind", "dicom.store")))]
    assert 85 < oldest < 600
    assert samples[("ris_hl7_messages_total", (("ack_code", "AR"),))] >= 1
    assert ("ris_gateway_spool_instances", ()) in samples
    assert any(name == "ris_mpps_performed_steps" for name, _ in samples) or \
        "ris_mpps_performed_steps" in text
