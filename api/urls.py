"""URLs of the REST API: ``/api/v1/...``, the OpenAPI schema and its Swagger UI page.

drf-spectacular's Redoc page is left out: its template loads Google Fonts, and a hospital
network often has no way out to the internet. Swagger UI comes whole from the sidecar package.
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from api import interfaces, performed, views
from api.worklist_endpoint import WorklistView

_swagger = SpectacularSwaggerView.as_view(url_name="api:schema")


def docs(request):
    """The Swagger UI page; a browser without a session goes to the login page and comes back
    (the schema and the API itself answer 401 to programs, which have no login page)."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return _swagger(request)


router = DefaultRouter()
router.include_root_view = False
router.register("patients", views.PatientViewSet, basename="patient")
router.register("orders", views.OrderViewSet, basename="order")
router.register("steps", views.StepViewSet, basename="step")
router.register("devices", views.DeviceViewSet, basename="device")
router.register("procedure-types", views.ProcedureTypeViewSet, basename="procedure-type")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")
router.register("performed-steps", performed.PerformedStepViewSet, basename="performed-step")
router.register("hl7-messages", interfaces.InboundMessageViewSet, basename="hl7-message")
router.register("outbound-jobs", interfaces.OutboundJobViewSet, basename="outbound-job")
router.register("hl7-destinations", interfaces.HL7DestinationViewSet, basename="hl7-destination")
router.register("pacs-destinations", interfaces.PacsDestinationViewSet, basename="pacs-destination")

app_name = "api"

urlpatterns = [
    path("v1/", include(router.urls)),
    path("v1/worklist/", WorklistView.as_view(), name="worklist"),
    path("v1/auth/token/", views.TokenView.as_view(), name="token"),
    path("v1/auth/me/", views.WhoAmIView.as_view(), name="me"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs, name="docs"),
    re_path(r"^.*$", views.ApiNotFoundView.as_view(), name="not-found"),
]
