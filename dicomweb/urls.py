"""URLs of the DICOMweb origin server, mounted at ``/dicomweb/`` (PS3.18 resource paths)."""

from __future__ import annotations

from django.urls import path

from dicomweb import mpps, mwl, ups

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
    path("workitems", ups.WorkitemsView.as_view(), name="ups-search"),
    path("workitems/<str:uid>", ups.WorkitemView.as_view(), name="ups-workitem"),
    path(
        "workitems/<str:uid>/subscribers/<str:ae_title>",
        ups.SubscriptionView.as_view(),
        name="ups-subscription",
    ),
    path(
        "workitems/<str:uid>/subscribers/<str:ae_title>/suspend",
        ups.SuspendSubscriptionView.as_view(),
        name="ups-subscription-suspend",
    ),
    path("workitems/<str:uid>/state", ups.WorkitemStateView.as_view(), name="ups-state"),
    path(
        "workitems/<str:uid>/cancelrequest",
        ups.WorkitemCancelRequestView.as_view(),
        name="ups-cancel-request",
    ),
]
