import os

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from ris.health import health


@require_GET
def healthz(request):
    """Load balancers and ``ris serve`` itself poll this; 503 when anything is down.

    A failing outbound destination (an HIS or PACS down, a FAILED job) is ``"status":
    "degraded"`` with 200: ris itself works and must stay in the load balancer, while the queue
    keeps every message for later.
    """
    listeners = [
        name for name in os.environ.get("RIS_LISTENERS", "dicom,mllp,scheduler").split(",") if name
    ]
    report = health(listeners)
    return JsonResponse(report, status=200 if report["ok"] else 503)
