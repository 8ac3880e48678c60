"""Study availability: ask the PACS which studies of ris's steps it holds.

The scheduler's ``pacs_availability`` job (``RIS_SCHEDULER_JOBS``) sends a Study Root C-FIND
(PS3.4 C.6.2) per study, by Study Instance UID and, failing that, by Accession Number (a modality
that did not use the worklist made its own Study Instance UID). A found study marks the step
"images at PACS" with the PACS's series and instance counts, so ris knows images arrived even
when modalities send straight to the PACS. A step is asked about until it is completed and
confirmed; a started step, or one whose gateway received more than the PACS counted, is asked
again on every run.

Steps still waiting (SCHEDULED, ARRIVED, READY) that were scheduled today or in the last
``RIS_PACS_AVAILABILITY_DAYS`` are asked about too, until found: a modality that bypasses the
gateway and sends no MPPS leaves them waiting although the images are at the PACS. For devices
whose steps follow the images (``mpps.forwarding.progress``), a study found there starts its
step, and the counts the PACS reports feed the "stable study" rule that completes it.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from mpps.forwarding import progress, services
from mpps.forwarding.models import PacsDestination
from ris.outbound_queue import RetryLater
from worklist.dimse import new_ae
from worklist.models import ScheduledProcedureStep, StepStatus
from worklist.states import AVAILABILITY_WAITING_STATUSES, PERFORMED_STEP_STATUSES

logger = logging.getLogger("forwarding.availability")

#: Steps looked up per run and destination: a backlog is worked through over several runs.
MAX_STEPS_PER_RUN = 200


def steps_to_check() -> list[ScheduledProcedureStep]:
    now = timezone.now()
    since = now - dt.timedelta(days=settings.RIS_PACS_AVAILABILITY_DAYS)
    today = timezone.localdate(now)
    first_day = timezone.make_aware(
        dt.datetime.combine(today - dt.timedelta(days=settings.RIS_PACS_AVAILABILITY_DAYS),
                            dt.time(0))
    )
    end_of_today = timezone.make_aware(dt.datetime.combine(today + dt.timedelta(days=1),
                                                           dt.time(0)))
    unconfirmed = (
        Q(images__isnull=True)
        | Q(images__pacs_confirmed_at__isnull=True)
        | Q(status=StepStatus.STARTED)
        | Q(images__received_instances__gt=F("images__pacs_instances"))
    )
    performed = Q(status__in=PERFORMED_STEP_STATUSES, updated_at__gte=since)
    waiting = Q(
        status__in=AVAILABILITY_WAITING_STATUSES,
        scheduled_start__gte=first_day,
        scheduled_start__lt=end_of_today,
    ) & (Q(images__isnull=True) | Q(images__pacs_confirmed_at__isnull=True))
    return list(
        ScheduledProcedureStep.objects.filter(performed & unconfirmed | waiting)
        .select_related("requested_procedure__order", "station")
        .order_by(F("images__pacs_checked_at").asc(nulls_first=True), "pk")[:MAX_STEPS_PER_RUN]
    )


def _identifier(*, study_uid: str = "", accession: str = "") -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    ds.AccessionNumber = accession
    ds.NumberOfStudyRelatedSeries = None
    ds.NumberOfStudyRelatedInstances = None
    return ds


def _count(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _find(assoc, identifier: Dataset) -> tuple[int, int, int] | None:
    """(matches, series, instances) summed over the matches; None when the query failed."""
    matches = series = instances = 0
    for status, answer in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
        if "Status" not in status:
            return None
        code = int(status.Status)
        if code in (0xFF00, 0xFF01) and answer is not None:
            matches += 1
            series += _count(answer.get("NumberOfStudyRelatedSeries"))
            instances += _count(answer.get("NumberOfStudyRelatedInstances"))
        elif code != 0x0000:
            logger.warning("C-FIND for study availability failed: 0x%04X", code)
            return None
    return matches, series, instances


def check_destination(destination: PacsDestination, steps: list[ScheduledProcedureStep]) -> int:
    """Query one PACS about ``steps``; returns how many were found there."""
    from mpps.forwarding.sender import associate

    ae = new_ae(destination.calling_ae_title or settings.RIS_AE_TITLE)
    ae.add_requested_context(
        StudyRootQueryRetrieveInformationModelFind,
        [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
    )
    try:
        assoc = associate(destination, ae)
    except RetryLater as exc:
        logger.info("study availability: %s", exc)
        return 0
    found = 0
    try:
        for step in steps:
            procedure = step.requested_procedure
            result = _find(assoc, _identifier(study_uid=procedure.study_instance_uid))
            if result is not None and result[0] == 0 and procedure.order.accession_number:
                result = _find(assoc, _identifier(accession=procedure.order.accession_number))
            if result is None:
                break
            matches, series, instances = result
            if matches:
                services.record_availability(
                    step=step, destination=destination.name, series=series, instances=instances
                )
                progress.start_from_images(step, source=f"found at {destination.name}")
                found += 1
            else:
                services.record_not_found(step=step)
    finally:
        if assoc.is_established:
            assoc.release()
    return found


def check_studies() -> None:
    """The scheduler job."""
    destinations = list(PacsDestination.objects.filter(active=True, query_availability=True))
    if not destinations:
        return
    steps = steps_to_check()
    for destination in destinations:
        if not steps:
            return
        check_destination(destination, steps)


# --- studies at the PACS that match no order --------------------------------------------------


def _orphan_identifier(first_day: dt.date, last_day: dt.date) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyDate = f"{first_day:%Y%m%d}-{last_day:%Y%m%d}"  # range matching, PS3.4 C.2.2.2.5
    for keyword in ("StudyInstanceUID", "AccessionNumber", "PatientID", "PatientName",
                    "ModalitiesInStudy", "StudyDescription", "NumberOfStudyRelatedInstances"):
        setattr(ds, keyword, None)
    return ds


def _multi(value) -> str:
    """A multi-valued CS (Modalities in Study) as ``CT\\SR``."""
    if value is None or isinstance(value, str):
        return value or ""
    return "\\".join(str(v) for v in value if v)


def _study_date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def find_orphan_studies(destination: PacsDestination) -> int | None:
    """Ask one PACS for the studies of the last RIS_PACS_AVAILABILITY_DAYS and record those whose
    Study Instance UID and Accession Number belong to no order (and that the gateway did not
    forward: its unmatched studies are listed already). Returns how many are open, None when
    the PACS could not be asked."""
    from mpps.forwarding.sender import associate

    ae = new_ae(destination.calling_ae_title or settings.RIS_AE_TITLE)
    ae.add_requested_context(
        StudyRootQueryRetrieveInformationModelFind,
        [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
    )
    today = timezone.localdate()
    identifier = _orphan_identifier(
        today - dt.timedelta(days=settings.RIS_PACS_AVAILABILITY_DAYS), today
    )
    try:
        assoc = associate(destination, ae)
    except RetryLater as exc:
        logger.info("studies at the PACS: %s", exc)
        return None
    studies = []
    try:
        for status, answer in assoc.send_c_find(
            identifier, StudyRootQueryRetrieveInformationModelFind
        ):
            if "Status" not in status:
                return None
            code = int(status.Status)
            if code in (0xFF00, 0xFF01) and answer is not None:
                studies.append(answer)
            elif code != 0x0000:
                logger.warning("C-FIND for the studies at %s failed: 0x%04X",
                               destination.name, code)
                return None
    finally:
        if assoc.is_established:
            assoc.release()
    return services.record_pacs_studies(
        destination=destination.name,
        studies=[
            {
                "study_instance_uid": str(a.get("StudyInstanceUID", "") or ""),
                "accession_number": str(a.get("AccessionNumber", "") or ""),
                "patient_id": str(a.get("PatientID", "") or ""),
                "patient_name": str(a.get("PatientName", "") or ""),
                "study_date": _study_date(str(a.get("StudyDate", "") or "")),
                "modalities": _multi(a.get("ModalitiesInStudy")),
                "description": str(a.get("StudyDescription", "") or ""),
                "instances": _count(a.get("NumberOfStudyRelatedInstances")) or None,
            }
            for a in studies
        ],
    )


def check_orphan_studies() -> None:
    """The scheduler's ``pacs_orphans`` job."""
    for destination in PacsDestination.objects.filter(active=True, query_availability=True):
        find_orphan_studies(destination)
