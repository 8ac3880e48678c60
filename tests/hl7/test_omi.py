"""OMI^O23 in (IHE Scheduled Workflow.b, RAD-4 / RAD-13): IPC identifiers are used as given.

A real ``ris serve``, the hl7 package's MLLP client as the sending Order Filler / HIS, DCMTK
findscu as the modality reading the worklist that results.
"""

from __future__ import annotations

import hl7
import pytest
from pydicom import Dataset

from ris.models import InboundMessage
from tests.factories import first_step
from tests.hl7.conftest import read_ack, send
from tests.mwl.dcmtk import findscu
from worklist.models import Order, ScheduledProcedureStep, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)

UID = "1.2.826.0.1.3680043.2.1125.77"
#: IPC-1 accession, -2 requested procedure ID, -3 Study UID, -4 SPS ID, -5 modality,
#: -6 protocol code, -7 station name, -8 SPS location, -9 station AE title
IPC_CT = f"IPC|ACC-UP-1|RP-UP-1|{UID}|SPS-UP-1|CT|PROT1^Head routine^L|CT1|ROOM 3|CT1"
IPC_MR = f"IPC|ACC-UP-1|RP-UP-1|{UID}|SPS-UP-2|MR||MR1|ROOM 5|MR1"


def omi(
    control_id: str,
    placer: str = "PL-OMI-1",
    *,
    ipcs: tuple[str, ...] = (IPC_CT,),
    order_control: str = "NW",
    obr4: str = "CTHEAD^CT head^L",
    obr44: str = "",
    start: str = "202612011000",
    patient_id: str = "P-OMI",
) -> bytes:
    obr = f"OBR|1|{placer}^HIS||{obr4}"
    if obr44:
        obr += "|" * 40 + obr44
    segments = [
        f"MSH|^~\\&|DCM4CHEE|HOSP|RIS|RAD|20261130120000||OMI^O23^OMI_O23|{control_id}|P|2.5.1",
        f"PID|1||{patient_id}^^^HOSP^MR||Doe^John||19600202|M",
        "PV1|1|O|RAD",
        f"ORC|{order_control}|{placer}^HIS|||SC",
        f"TQ1|1||||||{start}||R",
        obr,
        *ipcs,
    ]
    return ("\r".join(segments) + "\r").encode()


def deliver(service, raw: bytes):
    return read_ack(send(service.mllp_port, raw))


def worklist(port: int, patient_id: str = "P-OMI") -> list[Dataset]:
    query = Dataset()
    query.PatientID = patient_id
    query.AccessionNumber = ""
    query.RequestedProcedureID = ""
    query.StudyInstanceUID = ""
    item = Dataset()
    for key in ("ScheduledProcedureStepID", "Modality", "ScheduledStationAETitle",
                "ScheduledStationName", "ScheduledProcedureStepLocation"):
        setattr(item, key, "")
    item.ScheduledProtocolCodeSequence = []
    query.ScheduledProcedureStepSequence = [item]
    result = findscu(port, query=query)
    assert result.returncode == 0, result.output
    return sorted(
        result.responses,
        key=lambda ds: ds.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID,
    )


def test_omi_is_answered_with_ori_o24(hl7_service, catalogue):
    raw = send(hl7_service.mllp_port, omi("OMI-0"))

    assert read_ack(raw).code == "AA"
    msh = hl7.parse(raw.decode()).segment("MSH")
    assert str(msh[9]) == "ORI^O24^ORI_O24"


def test_ipc_identifiers_appear_on_the_worklist_as_given(hl7_service, catalogue):
    assert deliver(hl7_service, omi("OMI-1")).code == "AA"

    [item] = worklist(hl7_service.dicom_port)
    sps = item.ScheduledProcedureStepSequence[0]
    assert item.AccessionNumber == "ACC-UP-1"
    assert item.RequestedProcedureID == "RP-UP-1"
    assert item.StudyInstanceUID == UID
    assert sps.ScheduledProcedureStepID == "SPS-UP-1"
    assert sps.Modality == "CT"
    assert sps.ScheduledStationAETitle == "CT1"
    assert sps.ScheduledProcedureStepLocation == "ROOM 3"
    [protocol] = sps.ScheduledProtocolCodeSequence
    assert (protocol.CodeValue, protocol.CodeMeaning) == ("PROT1", "Head routine")
    order = Order.objects.get()
    assert order.filler_order_number == "ACC-UP-1"


def test_several_ipc_are_several_steps_of_one_requested_procedure(hl7_service, catalogue):
    assert deliver(hl7_service, omi("OMI-2", ipcs=(IPC_CT, IPC_MR))).code == "AA"

    order = Order.objects.get()
    procedure = order.procedures.get()
    assert sorted(procedure.steps.values_list("sps_id", "station__ae_title", "modality")) == [
        ("SPS-UP-1", "CT1", "CT"),
        ("SPS-UP-2", "MR1", "MR"),
    ]
    items = worklist(hl7_service.dicom_port)
    assert [i.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID for i in items] == [
        "SPS-UP-1", "SPS-UP-2"
    ]
    assert {i.RequestedProcedureID for i in items} == {"RP-UP-1"}
    assert {i.StudyInstanceUID for i in items} == {UID}


def test_omi_without_ipc_gets_the_identifiers_ris_assigns(hl7_service, catalogue):
    assert deliver(hl7_service, omi("OMI-3", ipcs=())).code == "AA"

    order = Order.objects.get()
    step = first_step(order)
    assert order.accession_number.startswith("A")
    assert step.sps_id.startswith("SPS")
    assert step.station.ae_title == "CT1"  # from the catalogue, as for ORM/OMG
    assert step.status == StepStatus.SCHEDULED


def test_ipc_accession_of_another_order_is_refused_with_a_clear_ae(hl7_service, catalogue):
    deliver(hl7_service, omi("OMI-4", "PL-A"))
    other = IPC_CT.replace("RP-UP-1", "RP-UP-9").replace("SPS-UP-1", "SPS-UP-9").replace(
        ".77", ".78")
    ack = deliver(hl7_service, omi("OMI-5", "PL-B", ipcs=(other,), patient_id="P-OTHER"))

    assert ack.code == "AE"
    assert "205" in ack.error and "ACC-UP-1" in ack.error
    assert Order.objects.count() == 1
    assert InboundMessage.objects.get(control_id="OMI-5").status == InboundMessage.Status.ERROR


def test_ipc_sps_id_of_another_order_is_refused(hl7_service, catalogue):
    deliver(hl7_service, omi("OMI-6", "PL-C"))
    other = IPC_CT.replace("ACC-UP-1", "ACC-UP-2").replace("RP-UP-1", "RP-UP-2").replace(
        ".77", ".79")
    ack = deliver(hl7_service, omi("OMI-7", "PL-D", ipcs=(other,)))

    assert ack.code == "AE"
    assert "SPS-UP-1" in ack.error
    assert ScheduledProcedureStep.objects.count() == 1


def test_ipc_station_unknown_to_ris_is_refused_with_ae_204(hl7_service, catalogue):
    unknown = IPC_CT.replace("|CT1|ROOM 3|CT1", "||ROOM 3|XA9")
    ack = deliver(hl7_service, omi("OMI-8", ipcs=(unknown,)))

    assert ack.code == "AE"
    assert "204" in ack.error and "XA9" in ack.error
    assert not Order.objects.exists()


def test_omi_cancel_takes_the_steps_off_the_worklist(hl7_service, catalogue):
    deliver(hl7_service, omi("OMI-9", ipcs=(IPC_CT, IPC_MR)))
    ack = deliver(hl7_service, omi("OMI-10", order_control="CA"))

    assert ack.code == "AA"
    assert Order.objects.get().status == "CA"
    assert set(ScheduledProcedureStep.objects.values_list("status", flat=True)) == {
        StepStatus.CANCELED
    }
    assert worklist(hl7_service.dicom_port) == []


def test_omi_change_reschedules_every_step(hl7_service, catalogue):
    deliver(hl7_service, omi("OMI-11", ipcs=(IPC_CT, IPC_MR)))
    ack = deliver(hl7_service, omi("OMI-12", order_control="XO", start="202612021400"))

    assert ack.code == "AA", ack.error
    starts = {s.scheduled_start.isoformat() for s in ScheduledProcedureStep.objects.all()}
    assert starts == {"2026-12-02T14:00:00+00:00"}


def test_procedure_code_comes_from_obr44_when_obr4_is_empty(hl7_service, catalogue):
    ack = deliver(hl7_service, omi("OMI-13", ipcs=(), obr4="", obr44="MRBRAIN^MR brain^L"))

    assert ack.code == "AA", ack.error
    assert Order.objects.get().procedures.get().code_value == "MRBRAIN"


def test_obr4_and_obr44_both_empty_is_ae_101(hl7_service, catalogue):
    ack = deliver(hl7_service, omi("OMI-14", ipcs=(), obr4=""))

    assert ack.code == "AE"
    assert "101" in ack.error and "OBR-44" in ack.error


# --- XO with IPC (RAD-13 procedure update from an upstream Order Filler) -----------------------

IPC_CT_MOVED = f"IPC|ACC-UP-1|RP-UP-1|{UID}|SPS-UP-1|CT|PROT2^Head contrast^L|CT2|ROOM 9|CT2"


@pytest.fixture
def ct2(catalogue):
    from worklist.models import Device

    return Device.objects.create(
        ae_title="CT2", modality="CT", station_name="CT2", allow_overbooking=True
    )


def test_xo_with_ipc_moves_the_step_to_its_station_location_and_protocol(
    hl7_service, catalogue, ct2
):
    deliver(hl7_service, omi("OMI-XI-1"))

    ack = deliver(hl7_service, omi("OMI-XI-2", order_control="XO", ipcs=(IPC_CT_MOVED,)))

    assert ack.code == "AA", ack.error
    [item] = worklist(hl7_service.dicom_port)
    sps = item.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledStationAETitle == "CT2"
    assert sps.ScheduledProcedureStepLocation == "ROOM 9"
    assert [c.CodeValue for c in sps.ScheduledProtocolCodeSequence] == ["PROT2"]
    assert sps.ScheduledProcedureStepID == "SPS-UP-1"  # the identifiers stay
    assert item.AccessionNumber == "ACC-UP-1"


def test_xo_with_ipc_of_another_accession_is_refused_and_changes_nothing(
    hl7_service, catalogue, ct2
):
    deliver(hl7_service, omi("OMI-XI-3"))
    other = IPC_CT_MOVED.replace("ACC-UP-1", "ACC-UP-2")

    ack = deliver(hl7_service, omi("OMI-XI-4", order_control="XO", ipcs=(other,)))

    assert ack.code == "AE"
    assert "207" in ack.error and "IPC-1" in ack.error
    [item] = worklist(hl7_service.dicom_port)
    assert item.ScheduledProcedureStepSequence[0].ScheduledStationAETitle == "CT1"


def test_xo_with_ipc_naming_an_unknown_step_is_ae_204(hl7_service, catalogue, ct2):
    deliver(hl7_service, omi("OMI-XI-5"))
    other = IPC_CT_MOVED.replace("SPS-UP-1", "SPS-UP-7")

    ack = deliver(hl7_service, omi("OMI-XI-6", order_control="XO", ipcs=(other,)))

    assert ack.code == "AE"
    assert "204" in ack.error and "SPS-UP-7" in ack.error


def test_xo_with_ipc_to_a_station_of_another_modality_is_refused(hl7_service, catalogue):
    deliver(hl7_service, omi("OMI-XI-7"))
    to_mr = IPC_CT.replace("|CT1|ROOM 3|CT1", "|MR1|ROOM 3|MR1")

    ack = deliver(hl7_service, omi("OMI-XI-8", order_control="XO", ipcs=(to_mr,)))

    assert ack.code == "AE"
    assert "MR1" in ack.error
    assert ScheduledProcedureStep.objects.get().station.ae_title == "CT1"


def test_xo_with_ipc_without_sps_id_changes_the_nth_step(hl7_service, catalogue, ct2):
    deliver(hl7_service, omi("OMI-XI-9", ipcs=(IPC_CT, IPC_MR)))
    first = "IPC|||||CT||CT2|ROOM 9|CT2"

    ack = deliver(hl7_service, omi("OMI-XI-10", order_control="XO", ipcs=(first,)))

    assert ack.code == "AA", ack.error
    assert sorted(ScheduledProcedureStep.objects.values_list("sps_id", "station__ae_title")) == [
        ("SPS-UP-1", "CT2"), ("SPS-UP-2", "MR1"),
    ]
