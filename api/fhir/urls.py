"""URLs of the FHIR R4 facade, mounted at ``/fhir/``."""

from __future__ import annotations

from django.urls import path

from api.fhir import views

app_name = "fhir"

urlpatterns = [
    path("metadata", views.MetadataView.as_view(), name="metadata"),
    path("<str:resource_type>", views.SearchView.as_view(), name="search"),
    path("<str:resource_type>/<str:pk>", views.ReadView.as_view(), name="read"),
]
