"""A modality as an MPPS SCU (pynetdicom), playing what real modalities send.

``Modality.pps_for(step, ...)`` builds the N-CREATE a modality sends after picking ``step`` from
the worklist (IHE RAD-6: the Scheduled Step Attributes copied from the worklist item);
``completed(...)`` / ``discontinued(...)`` build the final N-SET (IHE RAD-7).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.dimse_primitives import N_CREATE, N_SET
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from tests.dimse import exchange
from worklist.models import ScheduledProcedureStep

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class Response:
    """What the SCP answered: status, Error Comment, Error ID, the UID it returned."""

    status: int
    comment: str = ""
    error_id: int | None = None
    affected_uid: str = ""
    attribute_ids: list[int] = field(default_factory=list)


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def step_attributes(step: ScheduledProcedureStep) -> Dataset:
    """One Scheduled Step Attributes Sequence item, as copied from the worklist item."""
    procedure = step.requested_procedure
    item = Dataset()
    item.StudyInstanceUID = procedure.study_instance_uid
    item.ReferencedStudySequence = []
    item.AccessionNumber = procedure.order.accession_number
    item.RequestedProcedureID = procedure.requested_procedure_id
    item.RequestedProcedureDescription = procedure.description
    item.ScheduledProcedureStepID = step.sps_id
    item.ScheduledProcedureStepDescription = step.description
    item.ScheduledProtocolCodeSequence = []
    return item


def series_item(*, images: int = 2, protocol: str = "Chest routine") -> Dataset:
    item = Dataset()
    item.PerformingPhysicianName = ""
    item.ProtocolName = protocol
    item.OperatorsName = "Li^Na"
    item.SeriesInstanceUID = generate_uid()
    item.SeriesDescription = protocol
    item.RetrieveAETitle = "PACS"
    refs = []
    for _ in range(images):
        ref = Dataset()
        ref.ReferencedSOPClassUID = CT_IMAGE
        ref.ReferencedSOPInstanceUID = generate_uid()
        refs.append(ref)
    item.ReferencedImageSequence = refs
    item.ReferencedNonImageCompositeSOPInstanceSequence = []
    return item


@dataclass
class Modality:
    port: int
    ae_title: str = "CT01"
    called_ae: str = "RIS"
    modality: str = "CT"

    def pps_for(
        self,
        *steps: ScheduledProcedureStep,
        started: dt.datetime | None = None,
        patient_id: str | None = None,
    ) -> Dataset:
        """The N-CREATE attribute list of a PPS performing ``steps`` (IN PROGRESS)."""
        started = started or dt.datetime.now()
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        if steps:
            ds.ScheduledStepAttributesSequence = [step_attributes(s) for s in steps]
            patient = steps[0].requested_procedure.order.patient
            ds.PatientName = str(patient.person_name)
            ds.PatientID = patient.patient_id if patient_id is None else patient_id
            birth = patient.birth_date
            ds.PatientBirthDate = birth.strftime("%Y%m%d") if birth else ""
            ds.PatientSex = patient.sex
        else:
            ds.PatientName = ""
            ds.PatientID = patient_id or ""
            ds.PatientBirthDate = ""
            ds.PatientSex = ""
        ds.ReferencedPatientSequence = []
        ds.PerformedProcedureStepID = f"PPS{started:%H%M%S%f}"[:16]
        ds.PerformedStationAETitle = self.ae_title
        ds.PerformedStationName = f"{self.ae_title} station"[:16]
        ds.PerformedLocation = "Room 1"
        ds.PerformedProcedureStepStartDate = started.strftime("%Y%m%d")
        ds.PerformedProcedureStepStartTime = started.strftime("%H%M%S")
        ds.PerformedProcedureStepStatus = "IN PROGRESS"
        ds.PerformedProcedureStepDescription = "CT chest"
        ds.PerformedProcedureTypeDescription = ""
        ds.ProcedureCodeSequence = []
        ds.PerformedProcedureStepEndDate = ""
        ds.PerformedProcedureStepEndTime = ""
        ds.Modality = self.modality
        ds.StudyID = "1"
        ds.PerformedProtocolCodeSequence = []
        ds.PerformedSeriesSequence = []
        ds.CommentsOnThePerformedProcedureStep = ""
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = []
        return ds

    def completed(self, *series: Dataset, ended: dt.datetime | None = None) -> Dataset:
        ended = ended or dt.datetime.now()
        ds = Dataset()
        ds.PerformedProcedureStepStatus = "COMPLETED"
        ds.PerformedProcedureStepEndDate = ended.strftime("%Y%m%d")
        ds.PerformedProcedureStepEndTime = ended.strftime("%H%M%S")
        ds.PerformedSeriesSequence = list(series) or [series_item()]
        return ds

    def discontinued(
        self, reason: Dataset | None, *series: Dataset, ended: dt.datetime | None = None
    ) -> Dataset:
        ended = ended or dt.datetime.now()
        ds = Dataset()
        ds.PerformedProcedureStepStatus = "DISCONTINUED"
        ds.PerformedProcedureStepEndDate = ended.strftime("%Y%m%d")
        ds.PerformedProcedureStepEndTime = ended.strftime("%H%M%S")
        ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = [reason] if reason else []
        ds.PerformedSeriesSequence = list(series)
        return ds

    # --- DIMSE ------------------------------------------------------------------------------

    def _associate(self):
        ae = AE(ae_title=self.ae_title)
        # Explicit VR Little Endian only, so tests that send raw bytes know their encoding.
        ae.add_requested_context(ModalityPerformedProcedureStep, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", self.port, ae_title=self.called_ae)
        assert assoc.is_established, "association with ris refused"
        return assoc

    def n_create(self, ds: Dataset, uid: str | None = "generate") -> tuple[Response, str]:
        """N-CREATE ``ds``; ``uid=None`` leaves the Affected SOP Instance UID out."""
        uid = generate_uid() if uid == "generate" else uid
        response = self.send_raw("N-CREATE", uid, ds)
        return response, uid or response.affected_uid

    def n_set(self, uid: str, ds: Dataset) -> Response:
        return self.send_raw("N-SET", uid, ds)

    def send_raw(self, operation: str, uid: str | None, payload: bytes | Dataset) -> Response:
        """Send an N-CREATE / N-SET whose attribute list is ``payload`` (bytes are sent as is).

        Lower level than ``send_n_create`` so that tests can send bytes no encoder would produce
        and read the Affected SOP Instance UID of the response.
        """
        assoc = self._associate()
        try:
            context = assoc._get_valid_context(ModalityPerformedProcedureStep, "", "scu")
            if isinstance(payload, Dataset):
                syntax = context.transfer_syntax[0]
                payload = encode(payload, syntax.is_implicit_VR, syntax.is_little_endian)
                assert payload is not None, "could not encode the test dataset"
            if operation == "N-CREATE":
                request = N_CREATE()
                request.AffectedSOPClassUID = ModalityPerformedProcedureStep
                request.AffectedSOPInstanceUID = uid
                request.AttributeList = BytesIO(payload)
            else:
                request = N_SET()
                request.RequestedSOPClassUID = ModalityPerformedProcedureStep
                request.RequestedSOPInstanceUID = uid
                request.ModificationList = BytesIO(payload)
            request.MessageID = 1
            rsp = exchange(assoc, request, context.context_id)
            return Response(
                status=int(rsp.Status),
                comment=str(rsp.ErrorComment or ""),
                error_id=int(rsp.ErrorID) if rsp.ErrorID is not None else None,
                affected_uid=str(rsp.AffectedSOPInstanceUID or ""),
                attribute_ids=_tags(getattr(rsp, "AttributeIdentifierList", None)),
            )
        finally:
            assoc.release()



def _tags(value) -> list[int]:
    """Attribute Identifier List (AT, VM 1-n): pydicom gives one tag or a list of them."""
    if value is None:
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [int(tag) for tag in value]
    return [int(value)]
