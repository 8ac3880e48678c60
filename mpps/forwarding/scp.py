"""The storage gateway on the ris AE: Storage SCP and the Storage Commitment report receiver.

Thin DIMSE adapters over ``mpps.forwarding.services``:

- C-STORE (every standard storage SOP class, the usual uncompressed and compressed transfer
  syntaxes): Success only after the instance is fsynced in the spool and its rows committed;
  0xA700 (Out of resources) when the spool or the database cannot take it (the modality retries),
  0xA900 (Data set does not match SOP class) when its UIDs are missing or malformed.
- N-EVENT-REPORT of the Storage Commitment Push Model (1.2.840.10008.1.20.1): the PACS reports on
  a new association, acting as SCP of the class (SCP/SCU Role Selection, PS3.4 J.3.3 and
  PS3.7 D.3.3.4), so ris accepts that role for the class. Reports on the association of the
  N-ACTION itself are handled by the same function (``sender``).
"""

from __future__ import annotations

import logging

from django.db import close_old_connections, connection
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import evt
from pynetdicom.presentation import AllStoragePresentationContexts
from pynetdicom.sop_class import StorageCommitmentPushModel

from mpps.forwarding import services
from worklist import selectors
from worklist.audit import Actor
from worklist.dimse import decode_incoming, error_comment

logger = logging.getLogger("forwarding.scp")

#: Transfer syntaxes the gateway accepts: uncompressed, deflate, JPEG, JPEG-LS, JPEG 2000, RLE.
#: Instances are stored and forwarded in the syntax they came in (no transcoding).
STORAGE_TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]

OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
NO_SUCH_EVENT_TYPE = 0x0113
#: "Refused: not authorized" (PS3.7 C.4; PS3.4 B.2.3): the Device may not store (may_store).
NOT_AUTHORIZED = 0x0124


def register(ae) -> list:
    """Offer the storage gateway on ``ae`` (see ``ris.dicom_server``)."""
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, STORAGE_TRANSFER_SYNTAXES)
    ae.add_supported_context(
        StorageCommitmentPushModel,
        [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
        scu_role=False,
        scp_role=True,
    )
    return [
        (evt.EVT_C_STORE, handle_store),
        (evt.EVT_N_EVENT_REPORT, handle_event_report),
        (evt.EVT_CONN_CLOSE, audit_received),
    ]


def _note_received(event: evt.Event, instance) -> None:
    """Count what this association brought, per study, for ``audit_received``."""
    received = event.assoc.__dict__.setdefault("_ris_received", {})
    study = received.setdefault(instance.study_instance_uid,
                                [services.patient_id_of(instance), 0])
    study[1] += 1


def audit_received(event: evt.Event) -> None:
    """EVT_CONN_CLOSE: one audit row per study the association stored."""
    received = event.assoc.__dict__.get("_ris_received")
    if not received:
        return
    peer = event.assoc.requestor
    try:
        close_old_connections()
        for study_uid, (patient_id, count) in received.items():
            services.instances_transferred(
                actor=Actor.ae(_calling_ae(event)), received=True, study_uid=study_uid,
                patient_id=patient_id, count=count, peer=f"{peer.address}:{peer.port}")
    except Exception:  # noqa: BLE001 - the instances are stored; only their audit row failed
        logger.exception("gateway: auditing the instances of an association failed")
    finally:
        connection.close()  # this thread's connection (ris.dicom_server closes it before us)


def _calling_ae(event: evt.Event) -> str:
    return (event.assoc.requestor.ae_title or "").strip()


def handle_store(event: evt.Event) -> int | Dataset:
    close_old_connections()
    calling = _calling_ae(event)
    try:
        device = selectors.device_for_ae(calling)
        if device is not None and not device.may_store:
            logger.warning("gateway: C-STORE from %s refused: the device may not store", calling)
            return _status(NOT_AUTHORIZED, f"{calling} may not store images to ris")
        dataset = decode_incoming(
            event,
            "DataSet",
            incoming=device.incoming_character_set if device is not None else "",
            calling_ae=calling,
        )
        # Relabelled (GB18030 behind a false or missing label): the spool gets the corrected
        # instance, not the bytes as received.
        raw = event.encoded_dataset(include_meta=True) if dataset is event.dataset else None
    except Exception as exc:  # noqa: BLE001 - undecodable: refuse this instance, keep serving
        logger.warning("gateway: undecodable C-STORE from %s: %s", calling, exc)
        return _status(CANNOT_UNDERSTAND, "the data set could not be decoded")
    try:
        received = services.receive_instance(
            dataset=dataset, file_meta=event.file_meta, calling_ae_title=calling, raw=raw
        )
    except services.InvalidInstance as exc:
        logger.warning("gateway: C-STORE from %s refused: %s", calling, exc)
        return _status(DATASET_DOES_NOT_MATCH, str(exc))
    except Exception:
        logger.exception("gateway: could not spool an instance from %s", calling)
        return _status(OUT_OF_RESOURCES, "ris could not store the instance; send it again")
    logger.debug("gateway: %s spooled", received.instance.sop_instance_uid)
    _note_received(event, received.instance)
    return 0x0000


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = error_comment(comment)
    return ds


def report_from(event: evt.Event) -> tuple[str, list[str], list[tuple[str, int]]]:
    """Transaction UID, committed SOP Instance UIDs, failed ones with their Failure Reason."""
    info = event.event_information
    committed = [
        str(item.ReferencedSOPInstanceUID) for item in info.get("ReferencedSOPSequence", [])
    ]
    failed = [
        (str(item.ReferencedSOPInstanceUID), int(item.get("FailureReason", 0x0110)))
        for item in info.get("FailedSOPSequence", [])
    ]
    return str(info.get("TransactionUID", "")), committed, failed


def handle_event_report(event: evt.Event) -> tuple[int, Dataset | None]:
    close_old_connections()
    try:
        if event.request.AffectedSOPClassUID != StorageCommitmentPushModel:
            return PROCESSING_FAILURE, None
        if event.request.EventTypeID not in (1, 2):
            return NO_SUCH_EVENT_TYPE, None
        uid, committed, failed = report_from(event)
        via = (
            "same association"
            if event.assoc.is_requestor
            else f"new association from {_calling_ae(event)}"
        )
        services.commitment_reported(
            transaction_uid=uid, committed=committed, failed=failed, via=via
        )
    except services.UnknownTransaction as exc:
        logger.warning("storage commitment report from %s: %s", _calling_ae(event), exc)
        return PROCESSING_FAILURE, None
    except Exception:
        logger.exception("storage commitment report from %s failed", _calling_ae(event))
        return PROCESSING_FAILURE, None
    finally:
        if event.assoc.is_requestor:
            # The report arrived on our own (sender's) association, in pynetdicom's thread.
            connection.close()
    return 0x0000, None
