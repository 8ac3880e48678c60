from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from ris import metrics, views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on pages without an icon link (the admin, Swagger UI).
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("ris/favicon.svg"))),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("api.urls")),
    path("dicomweb/", include("dicomweb.urls")),
    path("fhir/", include("api.fhir.urls")),
    path("", include("web.urls")),
]
