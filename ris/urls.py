from django.contrib import admin
from django.urls import include, path

from ris import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("api.urls")),
    path("dicomweb/", include("dicomweb.urls")),
    path("fhir/", include("api.fhir.urls")),
    path("", include("web.urls")),
]
