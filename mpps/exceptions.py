"""The exceptions work list: everything about performed work that needs a person (reads only).

Four kinds, one list (``exceptions``) and one set of counts (``exception_counts``, the
dashboard's):

- ``gateway``: studies the storage gateway received that matched no order (forwarded unchanged);
  one row per study.
- ``pps``: performed procedure steps unmatched or in conflict (``mpps.selectors.open_exceptions``).
- ``pacs``: studies found at a PACS that match no order (``PacsOrphanStudy``, from the
  ``pacs_orphans`` scheduler job).
- ``no_images``: steps COMPLETED by MPPS with no image received by the gateway nor found at a
  PACS ``RIS_EXCEPTION_NO_IMAGES_HOURS`` after they were completed (images lost, sent to the
  wrong place, or a PPS for an exam that did not happen).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Exists, Max, Min, OuterRef, Q
from django.utils import timezone

from mpps.forwarding.models import PacsOrphanStudy, SpooledInstance, StepImages
from mpps.models import EXCEPTION_STATES, PerformedProcedureStep, StepLink
from worklist.models import ScheduledProcedureStep, StepStatus

KINDS = ("gateway", "pps", "pacs", "no_images")
#: Rows read per kind: the screen pages through at most this many of each.
LIMIT = 500


@dataclass
class ExceptionFilter:
    kind: str = ""
    since: dt.date | None = None
    patient_id: str = ""
    modality: str = ""


@dataclass
class ExceptionRow:
    kind: str
    at: dt.datetime
    patient_id: str
    patient_name: str
    accession_number: str
    modality: str
    detail: str  # the note ris recorded (match note, reconciliation note, study description)
    source: str  # calling AE, station AE or PACS destination
    #: The object to open: ("pps", pk), ("step", order pk), ("gateway", study uid), ("pacs", pk)
    ref: tuple[str, object]
    count: int | None = None


def _since(flt: ExceptionFilter) -> dt.datetime | None:
    if flt.since is None:
        return None
    return timezone.make_aware(dt.datetime.combine(flt.since, dt.time(0)))


def no_images_cutoff(now: dt.datetime | None = None) -> dt.datetime:
    hours = settings.RIS_EXCEPTION_NO_IMAGES_HOURS
    return (now or timezone.now()) - dt.timedelta(hours=hours)


def _gateway_studies(flt: ExceptionFilter):
    query = SpooledInstance.objects.filter(matched=False)
    if flt.patient_id:
        query = query.filter(patient_id=flt.patient_id)
    if flt.modality:
        query = query.filter(modality=flt.modality)
    if (since := _since(flt)) is not None:
        query = query.filter(received_at__gte=since)
    return (
        query.values("study_instance_uid")
        .annotate(
            n=Count("id"),
            last=Max("received_at"),
            patient_id=Max("patient_id"),
            patient_name=Max("patient_name"),
            accession=Max("accession_number"),
            modality=Max("modality"),
            ae=Max("calling_ae_title"),
            note=Min("match_note"),
        )
        .order_by("-last")
    )


def _pps(flt: ExceptionFilter):
    query = PerformedProcedureStep.objects.filter(reconciliation__in=EXCEPTION_STATES)
    if flt.patient_id:
        query = query.filter(patient_id=flt.patient_id)
    if flt.modality:
        query = query.filter(modality=flt.modality)
    if (since := _since(flt)) is not None:
        query = query.filter(started_at__gte=since)
    return query.order_by("-started_at", "-id")


def _pacs(flt: ExceptionFilter):
    query = PacsOrphanStudy.objects.filter(resolved_at__isnull=True)
    if flt.patient_id:
        query = query.filter(patient_id=flt.patient_id)
    if flt.modality:
        query = query.filter(modalities__contains=flt.modality)
    if flt.since is not None:
        query = query.filter(study_date__gte=flt.since)
    return query.order_by("-last_seen_at", "-id")


def _no_images(flt: ExceptionFilter):
    by_mpps = StepLink.objects.filter(step_id=OuterRef("pk"))
    with_images = StepImages.objects.filter(step_id=OuterRef("pk")).filter(
        Q(received_instances__gt=0) | Q(pacs_confirmed_at__isnull=False)
    )
    query = (
        ScheduledProcedureStep.objects.filter(
            status=StepStatus.COMPLETED, updated_at__lt=no_images_cutoff()
        )
        .filter(Exists(by_mpps))
        .exclude(Exists(with_images))
        .select_related("requested_procedure__order__patient", "station")
    )
    if flt.patient_id:
        query = query.filter(requested_procedure__order__patient__patient_id=flt.patient_id)
    if flt.modality:
        query = query.filter(modality=flt.modality)
    if (since := _since(flt)) is not None:
        query = query.filter(updated_at__gte=since)
    return query.order_by("-updated_at", "-pk")


def exception_counts(flt: ExceptionFilter | None = None) -> dict[str, int]:
    """Open exceptions per kind (four queries), for the dashboard and the screen's tabs."""
    flt = flt or ExceptionFilter()
    return {
        "gateway": _gateway_studies(flt).count(),
        "pps": _pps(flt).count(),
        "pacs": _pacs(flt).count(),
        "no_images": _no_images(flt).count(),
    }


def exceptions(flt: ExceptionFilter | None = None) -> list[ExceptionRow]:
    """The open exceptions of the chosen kind (or all), newest first."""
    flt = flt or ExceptionFilter()
    kinds = [flt.kind] if flt.kind in KINDS else list(KINDS)
    rows: list[ExceptionRow] = []
    if "gateway" in kinds:
        for s in _gateway_studies(flt)[:LIMIT]:
            rows.append(ExceptionRow(
                "gateway", s["last"], s["patient_id"], s["patient_name"], s["accession"],
                s["modality"], s["note"], s["ae"], ("gateway", s["study_instance_uid"]), s["n"],
            ))
    if "pps" in kinds:
        for pps in _pps(flt)[:LIMIT]:
            rows.append(ExceptionRow(
                "pps", pps.started_at, pps.patient_id, pps.patient_name, "", pps.modality,
                pps.reconciliation_note, pps.station_ae_title, ("pps", pps.pk),
            ))
    if "pacs" in kinds:
        for study in _pacs(flt)[:LIMIT]:
            at = study.last_seen_at
            rows.append(ExceptionRow(
                "pacs", at, study.patient_id, study.patient_name, study.accession_number,
                study.modalities, study.description, study.destination, ("pacs", study.pk),
                study.instances,
            ))
    if "no_images" in kinds:
        for step in _no_images(flt)[:LIMIT]:
            order = step.requested_procedure.order
            rows.append(ExceptionRow(
                "no_images", step.updated_at, order.patient.patient_id,
                order.patient.name_ideographic or order.patient.name_alphabetic,
                order.accession_number, step.modality, f"{step.sps_id} {step.description}",
                step.station.ae_title if step.station else "", ("step", order.pk),
            ))
    rows.sort(key=lambda row: row.at, reverse=True)
    return rows
