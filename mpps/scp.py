"""The MPPS SCP (SOP Class 1.2.840.10008.3.1.2.3.3) on the ris AE: a thin DIMSE adapter.

Decode the request, call ``mpps.services``, encode the status. Every refusal carries an Error
Comment (and for "may no longer be updated" the Error ID 0xA710) and is logged with the calling
AE title, so the modality's engineer and the ris operator read the same reason.
"""

from __future__ import annotations

import logging

from django.db import close_old_connections
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from mpps import services
from mpps.validation import (
    ATTRIBUTE_LIST_ERROR,
    DOMAIN_ERROR_STATUS,
    INVALID_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
    MppsError,
    is_valid_uid,
    tag_label,
)
from worklist import selectors
from worklist.audit import Actor
from worklist.dimse import TRANSFER_SYNTAXES, decode_incoming, error_comment
from worklist.errors import DomainError

logger = logging.getLogger("mpps.scp")

MPPS_SOP_CLASS = ModalityPerformedProcedureStep
#: Failure 0x0122 "SOP class not supported": N-CREATE/N-SET of a class that is not MPPS.
SOP_CLASS_NOT_SUPPORTED = 0x0122
#: Failure 0x0124 "Refused: not authorized" (PS3.7 C.4): the Device may not send MPPS.
NOT_AUTHORIZED = 0x0124


def register(ae) -> list:
    """Offer MPPS on ``ae`` (see ``ris.dicom_server``) and return its event handlers."""
    ae.add_supported_context(MPPS_SOP_CLASS, TRANSFER_SYNTAXES)
    return [(evt.EVT_N_CREATE, handle_n_create), (evt.EVT_N_SET, handle_n_set)]


def _calling_ae(event: evt.Event) -> str:
    return (event.assoc.requestor.ae_title or "").strip()


def _refused_device(event: evt.Event, device, operation: str):
    """0x0124 for a Device that may not send MPPS (``Device.may_send_mpps``), else None."""
    if device is None or device.may_send_mpps:
        return None
    logger.warning("MPPS %s from %s refused: the device may not send MPPS", operation,
                   _calling_ae(event))
    return _status(NOT_AUTHORIZED, f"{_calling_ae(event)} may not send MPPS to ris"), None


def _decoded(event: evt.Event, parameter: str, device) -> Dataset:
    """The attribute or modification list read in the character set the modality really sends
    (its Device's incoming character set, GB18030 behind a false ISO_IR 192: worklist.charsets).
    An N-SET without (0008,0005) and with its text in the N-CREATE's set is left to
    services.pps_update, which knows that set."""
    incoming = device.incoming_character_set if device is not None else ""
    return decode_incoming(
        event,
        parameter,
        incoming=incoming,
        calling_ae=_calling_ae(event),
        guess_unlabelled=parameter == "AttributeList",
    )


def _status(
    status: int,
    comment: str = "",
    *,
    error_id: int | None = None,
    attributes: tuple[int, ...] = (),
    with_attribute_list: bool = False,
) -> Dataset:
    ds = Dataset()
    ds.Status = status
    if comment:
        ds.ErrorComment = error_comment(comment)
    if error_id is not None:
        ds.ErrorID = error_id
    if attributes and with_attribute_list:
        # Attribute Identifier List (0000,1005): pynetdicom carries it on N-SET responses only.
        ds.AttributeIdentifierList = list(attributes)
    return ds


def _refuse(
    event: evt.Event, operation: str, uid: str, exc: MppsError, *, with_attribute_list: bool
) -> tuple[Dataset, None]:
    logger.warning(
        "MPPS %s %s from %s refused 0x%04X: %s",
        operation,
        uid,
        _calling_ae(event),
        exc.status,
        exc.comment,
    )
    return (
        _status(
            exc.status,
            exc.comment,
            error_id=exc.error_id,
            attributes=exc.attributes,
            with_attribute_list=with_attribute_list,
        ),
        None,
    )


def handle_n_create(event: evt.Event) -> tuple[Dataset | int, Dataset | None]:
    """EVT_N_CREATE: a modality starts a Performed Procedure Step (IN PROGRESS)."""
    request = event.request
    if request.AffectedSOPClassUID != MPPS_SOP_CLASS:
        return _status(SOP_CLASS_NOT_SUPPORTED, "ris creates only MPPS instances"), None
    uid = str(request.AffectedSOPInstanceUID or "").strip()
    assigned = not uid
    if assigned:
        # PS3.7 10.1.5: without an Affected SOP Instance UID the SCP creates one and returns it.
        uid = generate_uid(prefix=None)
    elif not is_valid_uid(uid):
        error = MppsError(INVALID_OBJECT_INSTANCE, f"{uid[:40]!r} is not a valid SOP Instance UID")
        return _refuse(event, "N-CREATE", uid, error, with_attribute_list=False)
    close_old_connections()
    try:
        device = selectors.device_for_ae(_calling_ae(event))
        refused = _refused_device(event, device, "N-CREATE")
        if refused is not None:
            return refused
        attributes = _decoded(event, "AttributeList", device)
    except Exception as exc:  # noqa: BLE001 - the peer's bytes, not our bug
        error = MppsError(PROCESSING_FAILURE, f"Attribute list cannot be decoded: {exc}")
        return _refuse(event, "N-CREATE", uid, error, with_attribute_list=False)
    try:
        services.pps_create(
            sop_instance_uid=uid,
            dataset=attributes,
            actor=Actor.ae(_calling_ae(event)),
            calling_ae_title=_calling_ae(event),
        )
    except MppsError as exc:
        return _refuse(event, "N-CREATE", uid, exc, with_attribute_list=False)
    except Exception as exc:  # noqa: BLE001 - the modality gets a status, ris keeps serving
        return _failure(event, "N-CREATE", uid, exc)
    response = Dataset()
    if assigned:
        response.AffectedSOPInstanceUID = uid  # pynetdicom moves it into the N-CREATE-RSP
    return SUCCESS, response


def handle_n_set(event: evt.Event) -> tuple[Dataset | int, Dataset | None]:
    """EVT_N_SET: more series, or the final COMPLETED / DISCONTINUED of a PPS."""
    request = event.request
    if request.RequestedSOPClassUID != MPPS_SOP_CLASS:
        return _status(SOP_CLASS_NOT_SUPPORTED, "ris updates only MPPS instances"), None
    uid = str(request.RequestedSOPInstanceUID or "").strip()
    close_old_connections()
    try:
        device = selectors.device_for_ae(_calling_ae(event))
        refused = _refused_device(event, device, "N-SET")
        if refused is not None:
            return refused
        modifications = _decoded(event, "ModificationList", device)
    except Exception as exc:  # noqa: BLE001 - the peer's bytes, not our bug
        error = MppsError(PROCESSING_FAILURE, f"Modification list cannot be decoded: {exc}")
        return _refuse(event, "N-SET", uid, error, with_attribute_list=True)
    try:
        _, ignored = services.pps_update(
            sop_instance_uid=uid, dataset=modifications, actor=Actor.ae(_calling_ae(event))
        )
    except MppsError as exc:
        return _refuse(event, "N-SET", uid, exc, with_attribute_list=True)
    except Exception as exc:  # noqa: BLE001 - the modality gets a status, ris keeps serving
        return _failure(event, "N-SET", uid, exc)
    if ignored:
        names = ", ".join(tag_label(tag).split(" ")[0] for tag in ignored)
        logger.info("MPPS N-SET %s from %s: ignored %s", uid, _calling_ae(event), names)
        return (
            _status(
                ATTRIBUTE_LIST_ERROR,
                f"not changed (set at N-CREATE only): {names}",
                attributes=ignored,
                with_attribute_list=True,
            ),
            None,
        )
    return SUCCESS, None


def _failure(event: evt.Event, operation: str, uid: str, exc: Exception) -> tuple[Dataset, None]:
    """Anything unexpected: nothing was stored (the transaction rolled back); the modality may
    retry. A domain refusal keeps its message; an internal error is logged with its traceback."""
    if isinstance(exc, DomainError):
        comment = exc.message
        logger.warning("MPPS %s %s from %s failed: %s", operation, uid, _calling_ae(event), comment)
        return _status(DOMAIN_ERROR_STATUS[exc.code], comment), None
    comment = f"ris could not process the {operation}: {exc.__class__.__name__}"
    logger.exception("MPPS %s %s from %s failed", operation, uid, _calling_ae(event))
    return _status(PROCESSING_FAILURE, comment), None
