"""Queue senders of the PACS forwarder (``ris.outbound_queue`` job kinds, see RIS_OUTBOUND_SENDERS).

- ``dicom.mpps``: relay one accepted MPPS N-CREATE / N-SET to a destination.
- ``dicom.store``: C-STORE every pending instance of one study to a destination over one
  association, in the transfer syntax it was received in, then ask for storage commitment
  (N-ACTION) for what was stored.
- ``dicom.commit``: ask again for commitment of instances whose report never came.

A PACS that cannot be reached, refuses the association or answers "out of resources" raises
``RetryLater`` (the queue backs off and retries, nothing is dropped). Sends are idempotent: an
instance stored twice is the same SOP Instance UID (the PACS keeps one), an N-CREATE repeated
after a lost response is answered "duplicate SOP instance" (0x0111), taken as delivered.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
)

from mpps.forwarding import scp, services, spool
from mpps.forwarding.models import (
    CommitmentRequest,
    InstanceDelivery,
    PacsDestination,
    SpooledInstance,
)
from ris.models import OutboundJob
from ris.outbound_queue import Rejected, RetryLater
from worklist.audit import Actor
from worklist.dimse import new_ae

logger = logging.getLogger("forwarding.sender")

# Send spool files as they are (no decode / re-encode): the syntax of the file is the syntax sent.
_config.STORE_SEND_CHUNKED_DATASET = True

UNCOMPRESSED = {ExplicitVRLittleEndian, ImplicitVRLittleEndian, "1.2.840.10008.1.2.2"}
#: pynetdicom (and PS3.8) allow at most 128 presentation contexts per association.
MAX_CONTEXTS = 120
DUPLICATE_SOP_INSTANCE = 0x0111


def _destination(job: OutboundJob) -> PacsDestination:
    destination = PacsDestination.objects.filter(pk=job.payload.get("destination_id")).first()
    if destination is None or not destination.active:
        raise Rejected(f"destination {job.destination!r} is gone or inactive")
    return destination


def _tls_args(destination: PacsDestination):
    if not destination.use_tls:
        return None
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=settings.RIS_PACS_TLS_CA or None
    )
    if settings.RIS_PACS_TLS_CERT:
        context.load_cert_chain(settings.RIS_PACS_TLS_CERT, settings.RIS_PACS_TLS_KEY or None)
    return context, destination.host


def associate(destination: PacsDestination, ae: AE, handlers: list | None = None):
    """An association to ``destination`` with its timeouts and TLS (also used by the study
    availability query); raise RetryLater when the PACS does not accept it."""
    ae.acse_timeout = destination.timeout_seconds
    ae.dimse_timeout = destination.timeout_seconds
    ae.network_timeout = destination.timeout_seconds
    ae.connection_timeout = min(destination.timeout_seconds, 10)
    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.ae_title,
        evt_handlers=handlers or [],
        tls_args=_tls_args(destination),
    )
    if not assoc.is_established:
        state = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "failed"
        raise RetryLater(
            f"association with {destination.ae_title}@{destination.host}:{destination.port} {state}"
        )
    return assoc


def _new_ae(destination: PacsDestination) -> AE:
    return new_ae(destination.calling_ae_title or settings.RIS_AE_TITLE)


def _status_code(status: Dataset) -> int | None:
    return int(status.Status) if "Status" in status else None


# --- dicom.mpps -----------------------------------------------------------------------------


def mpps_dataset(payload: dict) -> Dataset:
    """The relayed attribute list: the modality's, as accepted (DICOM JSON back to a data set).

    The JSON holds decoded text; UTF-8 carries any of it, so a non-ASCII PPS goes out in
    ISO_IR 192 whatever the modality declared.
    """
    ds = Dataset.from_json(payload["attributes"])
    texts = [e.value for e in ds.iterall() if isinstance(e.value, str)]
    texts += [str(e.value) for e in ds.iterall() if e.VR == "PN" and e.value]
    if any(not t.isascii() for t in texts):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def send_mpps(job: OutboundJob) -> str:
    destination = _destination(job)
    if not destination.send_mpps:
        raise Rejected(f"{destination.name} no longer takes MPPS")
    ae = _new_ae(destination)
    ae.add_requested_context(
        ModalityPerformedProcedureStep, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    )
    ds = mpps_dataset(job.payload)
    uid = job.payload["sop_instance_uid"]
    operation = job.payload["operation"]
    assoc = associate(destination, ae)
    try:
        if operation == "N-CREATE":
            status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
        else:
            status, _ = assoc.send_n_set(ds, ModalityPerformedProcedureStep, uid)
    finally:
        if assoc.is_established:
            assoc.release()
    code = _status_code(status)
    if code is None:
        raise RetryLater(f"no {operation} response from {destination.ae_title}")
    if code == 0x0000 or (code & 0xF000) == 0xB000 or code == 0x0107:
        return f"{operation} 0x{code:04X}"
    if operation == "N-CREATE" and code == DUPLICATE_SOP_INSTANCE:
        return "N-CREATE repeated: the PACS has this PPS already"
    if code in (0x0213, 0xA700) or (code & 0xFF00) == 0xA700:
        raise RetryLater(f"{operation} 0x{code:04X} (resources) from {destination.ae_title}")
    comment = str(status.get("ErrorComment", ""))
    raise Rejected(f"{operation} refused 0x{code:04X} {comment}".strip())


# --- dicom.store ----------------------------------------------------------------------------


def _contexts_for(deliveries: Iterable[InstanceDelivery]) -> list[tuple[str, list[str]]]:
    pairs: list[tuple[str, list[str]]] = []
    seen: set[tuple[str, str]] = set()
    for delivery in deliveries:
        instance = delivery.instance
        key = (instance.sop_class_uid, instance.transfer_syntax_uid)
        if key in seen:
            continue
        seen.add(key)
        pairs.append((instance.sop_class_uid, [instance.transfer_syntax_uid]))
        if instance.transfer_syntax_uid not in UNCOMPRESSED:
            # Only taken if the PACS refuses the compressed syntax; see _store_one.
            pairs.append((instance.sop_class_uid, [ExplicitVRLittleEndian]))
    return pairs


def _batch(destination: PacsDestination, study_uid: str) -> list[InstanceDelivery]:
    deliveries = list(
        InstanceDelivery.objects.filter(
            destination=destination,
            study_instance_uid=study_uid,
            state=InstanceDelivery.State.PENDING,
        )
        .select_related("instance")
        .order_by("id")[: settings.RIS_FORWARD_BATCH_SIZE]
    )
    # Keep within the presentation context limit (rare: a study of > 60 SOP class/syntax pairs).
    kept: list[InstanceDelivery] = []
    for delivery in deliveries:
        if len(_contexts_for([*kept, delivery])) > MAX_CONTEXTS - 1:
            break
        kept.append(delivery)
    return kept


def _store_one(assoc, delivery: InstanceDelivery) -> int | None:
    """C-STORE one spool file; the status code, or None when the association broke."""
    instance = delivery.instance
    path = spool.absolute(instance.path)
    try:
        status = assoc.send_c_store(path)
    except ValueError:
        # No context in the received syntax: the PACS refused it. Uncompressed data can be
        # re-encoded by pynetdicom in a syntax it accepted; compressed data cannot (no codecs).
        if instance.transfer_syntax_uid not in UNCOMPRESSED:
            raise
        status = assoc.send_c_store(dcmread(path))
    return _status_code(status)


def send_study(job: OutboundJob) -> str:
    destination = _destination(job)
    if not destination.send_images:
        raise Rejected(f"{destination.name} no longer takes images")
    study_uid = job.payload["study_instance_uid"]
    stored = failed = 0
    while True:
        close_old_connections()
        batch = _batch(destination, study_uid)
        if not batch:
            break
        batch_stored, batch_failed = _store_batch(destination, batch)
        stored += batch_stored
        failed += batch_failed
        if batch_stored == 0 and batch_failed == 0:
            break
    return f"{stored} stored, {failed} refused"


def _store_batch(destination: PacsDestination, batch: list[InstanceDelivery]) -> tuple[int, int]:
    ae = _new_ae(destination)
    for sop_class, syntaxes in _contexts_for(batch):
        ae.add_requested_context(sop_class, syntaxes)
    if destination.storage_commitment:
        ae.add_requested_context(StorageCommitmentPushModel, [ExplicitVRLittleEndian])
    handlers = [(evt.EVT_N_EVENT_REPORT, scp.handle_event_report)]
    assoc = associate(destination, ae, handlers)
    stored: list[InstanceDelivery] = []
    refused: list[tuple[InstanceDelivery, str]] = []
    retry: str | None = None
    try:
        for delivery in batch:
            try:
                code = _store_one(assoc, delivery)
            except FileNotFoundError:
                if _received_again(delivery):
                    continue  # a newer copy replaced this file; the next pass sends it
                refused.append((delivery, "spool file missing"))
                continue
            except ValueError as exc:
                refused.append((delivery, f"no accepted transfer syntax: {exc}"[:120]))
                continue
            if code is None:
                retry = f"C-STORE to {destination.ae_title}: no response (association lost)"
                break
            if code == 0x0000 or (code & 0xF000) == 0xB000:
                stored.append(delivery)
            elif (code & 0xFF00) == 0xA700 or code == 0x0213:
                retry = f"C-STORE to {destination.ae_title}: 0x{code:04X} out of resources"
                break
            else:
                refused.append((delivery, f"C-STORE refused 0x{code:04X}"))
        _record_stores(destination, stored, refused)
        _audit_sent(destination, stored)
        if stored and destination.storage_commitment:
            if assoc.is_established:
                _request_commitment(assoc, destination, stored)
            else:
                services.commit_later(destination, [d.pk for d in stored])
    finally:
        if assoc.is_established:
            assoc.release()
    if retry:
        raise RetryLater(retry)
    return len(stored), len(refused)


def _received_again(delivery: InstanceDelivery) -> bool:
    path = SpooledInstance.objects.filter(pk=delivery.instance_id).values_list("path", flat=True)
    return bool(path) and path[0] != delivery.instance.path


@transaction.atomic
def _audit_sent(destination: PacsDestination, stored: list[InstanceDelivery]) -> None:
    studies: dict[str, list] = {}
    for delivery in stored:
        study = studies.setdefault(delivery.study_instance_uid,
                                   [services.patient_id_of(delivery.instance), 0])
        study[1] += 1
    for study_uid, (patient_id, count) in studies.items():
        services.instances_transferred(
            actor=Actor.system("forwarding"), received=False, study_uid=study_uid,
            patient_id=patient_id, count=count, peer=destination.ae_title)


def _record_stores(
    destination: PacsDestination,
    stored: list[InstanceDelivery],
    refused: list[tuple[InstanceDelivery, str]],
) -> None:
    now = timezone.now()
    state = (
        InstanceDelivery.State.SENT
        if destination.storage_commitment
        else InstanceDelivery.State.STORED
    )
    for delivery in stored:
        # Unless the modality sent the instance again meanwhile (another file: send that too).
        InstanceDelivery.objects.filter(
            pk=delivery.pk,
            state=InstanceDelivery.State.PENDING,
            instance__path=delivery.instance.path,
        ).update(
            state=state, sent_at=now, store_count=delivery.store_count + 1, last_status="stored"
        )
    for delivery, why in refused:
        logger.warning(
            "PACS %s refused %s: %s", destination.name, delivery.instance.sop_instance_uid, why
        )
        # A delivery withdrawn meanwhile (its study corrected for an IOCM archive) stays so.
        InstanceDelivery.objects.filter(pk=delivery.pk).exclude(
            state=InstanceDelivery.State.WITHDRAWN
        ).update(state=InstanceDelivery.State.FAILED, last_status=why[:120])
    if not destination.storage_commitment and stored:
        transaction.on_commit(services.purge_spool)


def _commitment_request(transaction_uid: str, deliveries: list[InstanceDelivery]) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    items = []
    for delivery in deliveries:
        item = Dataset()
        item.ReferencedSOPClassUID = delivery.instance.sop_class_uid
        item.ReferencedSOPInstanceUID = delivery.instance.sop_instance_uid
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


def _request_commitment(assoc, destination: PacsDestination, deliveries: list[InstanceDelivery]):
    """N-ACTION "Request Storage Commitment" (PS3.4 J.3.2); a failure leaves the request to be
    asked again by a ``dicom.commit`` job rather than failing the stores that worked."""
    # A UUID-derived UID (PS3.5 B.2): unique without a counter, fine for a transaction.
    uid = generate_uid(prefix=None)
    request = services.commitment_requested(
        destination=destination, delivery_ids=[d.pk for d in deliveries], transaction_uid=uid
    )
    ok = _send_n_action(assoc, _commitment_request(uid, deliveries))
    if not ok:
        services.retry_commitment(request)
        return
    _wait_for_report(destination, request)


def _send_n_action(assoc, ds: Dataset) -> bool:
    try:
        status, _ = assoc.send_n_action(
            ds, 1, StorageCommitmentPushModel, StorageCommitmentPushModelInstance
        )
    except ValueError as exc:  # the PACS did not accept the Storage Commitment context
        logger.warning("storage commitment not accepted by the PACS: %s", exc)
        return False
    code = _status_code(status)
    return code is not None and (code == 0x0000 or (code & 0xF000) == 0xB000)


def _wait_for_report(destination: PacsDestination, request: CommitmentRequest) -> None:
    deadline = time.monotonic() + destination.commitment_wait_seconds
    while time.monotonic() < deadline:
        state = CommitmentRequest.objects.filter(pk=request.pk).values_list("state", flat=True)
        if state and state[0] != CommitmentRequest.State.REQUESTED:
            return
        time.sleep(0.1)


# --- dicom.commit ---------------------------------------------------------------------------


def send_commitment(job: OutboundJob) -> str:
    destination = _destination(job)
    previous = CommitmentRequest.objects.filter(pk=job.payload["commitment_id"]).first()
    if previous is None:
        return "nothing to commit"
    deliveries = list(
        InstanceDelivery.objects.filter(
            commitment=previous, state=InstanceDelivery.State.SENT
        ).select_related("instance")
    )
    if not deliveries:
        return "nothing left to commit"
    ae = _new_ae(destination)
    ae.add_requested_context(StorageCommitmentPushModel, [ExplicitVRLittleEndian])
    assoc = associate(destination, ae, [(evt.EVT_N_EVENT_REPORT, scp.handle_event_report)])
    try:
        uid = generate_uid(prefix=None)
        request = services.commitment_requested(
            destination=destination, delivery_ids=[d.pk for d in deliveries], transaction_uid=uid
        )
        if not _send_n_action(assoc, _commitment_request(uid, deliveries)):
            CommitmentRequest.objects.filter(pk=request.pk).update(
                state=CommitmentRequest.State.EXPIRED
            )
            # Keep the instances tied to the request this job retries, for the next attempt.
            InstanceDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
                commitment=previous
            )
            raise RetryLater(f"N-ACTION to {destination.ae_title} failed")
        _wait_for_report(destination, request)
    finally:
        if assoc.is_established:
            assoc.release()
    return f"commitment asked again for {len(deliveries)} instances ({uid})"
