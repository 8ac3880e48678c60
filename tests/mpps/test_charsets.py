"""MPPS from modalities that mislabel Chinese text: a pynetdicom SCU (the real peer) sends
GB18030 bytes under (0008,0005) ISO_IR 192, or unlabelled from a Device set to GB18030."""

from __future__ import annotations

import pytest
from pynetdicom.dsutils import encode

from mpps.models import PerformedProcedureStep, Reconciliation
from tests.factories import DeviceFactory, first_step, make_order
from worklist import services
from worklist.audit import Actor
from worklist.charsets import IncomingCharacterSet

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]

GB18030_LABEL = b"\x08\x00\x05\x00CS\x08\x00GB18030 "  # Explicit VR Little Endian


def hanzi_only_step(station):
    patient, _ = services.patient_upsert(
        patient_id="ZH-MPPS-1", name="=王^小东", actor=Actor.system("test")
    )
    return first_step(make_order(patient=patient, station=station))


def gb18030_attribute_list(modality, step, label: bytes) -> bytes:
    """The N-CREATE attribute list in GB18030 bytes, its (0008,0005) element replaced by
    ``label`` (b"" for none)."""
    ds = modality.pps_for(step)
    ds.SpecificCharacterSet = "GB18030"
    ds.PerformedProcedureStepDescription = "胸部CT平扫"
    raw = encode(ds, False, True)
    assert GB18030_LABEL in raw
    return raw.replace(GB18030_LABEL, label)


def test_gb18030_bytes_labelled_iso_ir_192_link_and_store_the_right_name(
    modality, ct_station, ris_service
):
    step = hanzi_only_step(ct_station)
    label = b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 192"
    rsp = modality.send_raw("N-CREATE", "1.2.826.0.1.3680043.10.543.77.1",
                            gb18030_attribute_list(modality, step, label))
    assert rsp.status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid="1.2.826.0.1.3680043.10.543.77.1")
    assert pps.reconciliation == Reconciliation.MATCHED
    assert pps.patient_name == str(step.requested_procedure.order.patient.person_name)
    assert "王^小东" in pps.patient_name
    assert pps.description == "胸部CT平扫"
    assert pps.character_set == "GB18030"
    assert f"{modality.ae_title} declared ISO_IR 192 (UTF-8) but sent GB18030" in (
        ris_service.log()
    )


def test_unlabelled_gb18030_from_a_device_set_to_gb18030_is_read_as_gb18030(modality):
    station = DeviceFactory(
        ae_title=modality.ae_title, incoming_character_set=IncomingCharacterSet.GB18030
    )
    step = hanzi_only_step(station)
    rsp = modality.send_raw("N-CREATE", "1.2.826.0.1.3680043.10.543.77.2",
                            gb18030_attribute_list(modality, step, b""))
    assert rsp.status == 0x0000
    pps = PerformedProcedureStep.objects.get(sop_instance_uid="1.2.826.0.1.3680043.10.543.77.2")
    assert "王^小东" in pps.patient_name
    assert pps.description == "胸部CT平扫"
