import os

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from ris.health import health


@require_GET
def healthz(request):
    """Load balancers and ``ris serve`` itself poll this; 503 when anything is down."""
    listeners = [
        name for name in os.environ.get("RIS_LISTENERS", "dicom,mllp,scheduler").split(",") if name
    ]
    report = health(listeners)
    return JsonResponse(report, status=200 if report["ok"] else 503)
