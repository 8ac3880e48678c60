"""URLs of the DICOMweb origin server, mounted at ``/dicomweb/`` (PS3.18 resource paths)."""

from __future__ import annotations

from django.urls import path

from dicomweb import mpps, mwl

app_name = "dicomweb"

urlpatterns = [
    path(
        "modality-scheduled-procedure-steps",
        mwl.ModalityScheduledProcedureStepsView.as_view(),
        name="mwl-search",
    ),
    path(
        "modality-performed-procedure-steps/<str:uid>",
        mpps.ModalityPerformedProcedureStepView.as_view(),
        name="mpps",
    ),
]
