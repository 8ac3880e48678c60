"""Linking a wrongly identified study from the exceptions screen, end to end with real peers.

A DX device set to "images only" sends a study with DCMTK ``storescu`` to the ris gateway under
a wrong accession number; its patient has two DX exams today, so the gateway cannot tell which
one it is and forwards it unchanged. A technologist links it from the exceptions screen in
headless Chromium (Playwright). Then:

- Orthanc, a PACS without IOCM, holds the study corrected under the same SOP Instance UIDs: one
  copy each, the old one overwritten (the test Orthanc runs with ``OverwriteInstances``, which
  docs/conformance.md asks of such a PACS);
- the IOCM archive, a pynetdicom Storage SCP inside the test that records what it receives (no
  IOCM-capable archive is installed here), gets the corrected copies under new UIDs in the
  exam's study and a rejection note (113038) naming the instances it holds under the wrong
  identity;
- the HIS (the ``hl7`` package's MLLP server) gets IP then CM for the right order only.
"""

from __future__ import annotations

import subprocess
import threading

import pytest
from django.contrib.auth.models import Group, User
from pydicom import Dataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian
from pynetdicom import AE, evt

from mpps.forwarding import iocm
from mpps.forwarding.models import InstanceDelivery, PacsDestination, SpooledInstance
from ris.models import HL7Destination
from ris.roles import Role, ensure_groups
from tests.factories import DeviceFactory, PatientFactory, ProcedureTypeFactory, make_order
from tests.factories import first_step as step_of
from tests.forwarding.conftest import wait_for
from tests.forwarding.instances import dx_study, write_files
from tests.his import HISReceiver
from tests.mwl.dcmtk import tool
from tests.service import free_port
from tests.web.conftest import browser  # noqa: F401 - the Playwright browser fixture
from worklist.models import StepProgress, StepStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.dcmtk]

PASSWORD = "link-test-password"


class IocmArchive:
    """A Storage SCP that keeps every data set it is sent (the IOCM-capable destination)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Dataset] = []
        self._lock = threading.Lock()
        self._server = None

    def _on_store(self, event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        with self._lock:
            self.received.append(ds)
        return 0x0000

    def start(self) -> IocmArchive:
        ae = AE(ae_title="IOCMARC")
        for sop_class in (DigitalXRayImageStorageForPresentation, iocm.KEY_OBJECT_SELECTION):
            ae.add_supported_context(sop_class, ExplicitVRLittleEndian)
        self._server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def of_class(self, sop_class: str) -> list[Dataset]:
        with self._lock:
            return [ds for ds in self.received if ds.SOPClassUID == sop_class]


@pytest.fixture
def archive():
    server = IocmArchive().start()
    PacsDestination.objects.create(
        name="iocm-archive", ae_title="IOCMARC", host="127.0.0.1", port=server.port,
        send_mpps=False, storage_commitment=False, query_availability=False, iocm=True,
    )
    yield server
    server.stop()


@pytest.fixture
def exams():
    """One patient, two DX exams today on two images-only stations: chest and hand."""
    patient = PatientFactory(patient_id="P-REC-1", name_alphabetic="Zhao^Lei")
    steps = []
    for ae_title, code in (("DX1", "DXCHEST"), ("DX2", "DXHAND")):
        station = DeviceFactory(ae_title=ae_title, modality="DX",
                                step_progress=StepProgress.IMAGES)
        ptype = ProcedureTypeFactory(code_value=code, modality="DX")
        steps.append(step_of(make_order(patient=patient, procedure_type=ptype, station=station)))
    return steps


def storescu(port: int, files) -> None:
    subprocess.run(
        [tool("storescu"), "-aet", "DX1", "-aec", "RIS", "127.0.0.1", str(port),
         *map(str, files)],
        check=True, capture_output=True, timeout=60,
    )


def status_of(step) -> str:
    return type(step).objects.values_list("status", flat=True).get(pk=step.pk)


def delivered(count: int) -> bool:
    return InstanceDelivery.objects.filter(
        state__in=[InstanceDelivery.State.COMMITTED, InstanceDelivery.State.STORED]
    ).count() >= count


def test_a_study_with_a_wrong_accession_is_linked_in_the_browser_and_reaches_both_pacs_corrected(
    gateway, pacs, destination, archive, exams, browser, tmp_path  # noqa: F811
):
    chest, hand = exams
    his_port = free_port()
    HL7Destination.objects.create(name="HIS", host="127.0.0.1", port=his_port, version="2.5.1")
    ensure_groups()
    user = User.objects.create_user("tech.li", password=PASSWORD)
    user.groups.add(Group.objects.get(name=Role.TECHNOLOGIST.value))
    images = dx_study(2, patient_id="P-REC-1", patient_name="Zhao^Lei", accession="TYPO-7")
    old_uids = {ds.SOPInstanceUID for ds in images}
    accession = hand.requested_procedure.order.accession_number

    with HISReceiver(his_port) as his:
        storescu(gateway.dicom_port, write_files(images, tmp_path / "dx"))
        # Unmatched (two DX exams of the patient today): forwarded unchanged to both.
        wait_for(lambda: delivered(4), timeout=60, what="the unmatched study at both PACS",
                 service=gateway)
        assert not SpooledInstance.objects.filter(matched=True).exists()
        at_orthanc = pacs.instances_of_study(images[0].StudyInstanceUID)
        assert {pacs.tags(i["ID"])["AccessionNumber"] for i in at_orthanc} == {"TYPO-7"}

        context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
        context.set_default_timeout(15_000)
        page = context.new_page()
        try:
            page.goto(f"{gateway.base_url}/accounts/login/?next=/exceptions/")
            page.fill("#id_username", "tech.li")
            page.fill("#id_password", PASSWORD)
            with page.expect_navigation():
                page.click("form button.primary")
            row = page.locator("tr.exc-gateway")
            assert "TYPO-7" in row.inner_text()
            row.locator("input[name=accession_number]").fill(accession)
            row.locator("input[name=note]").fill("typed the wrong accession")
            with page.expect_navigation():
                row.locator("button:has-text('Link')").click()
            shown = page.locator("ul.messages").inner_text()
        finally:
            context.close()
        assert f"2 instance(s) corrected to order {accession}" in shown
        assert "orthanc received the corrected instances under the same SOP Instance UIDs" in shown
        assert "iocm-archive received corrected copies under new UIDs" in shown

        # Orthanc: the same SOP Instance UIDs, one copy each, now with the right accession.
        def corrected_at_orthanc():
            found = pacs.instances_of_study(images[0].StudyInstanceUID)
            tags = [pacs.tags(i["ID"]) for i in found]
            return len(tags) == 2 and {t["AccessionNumber"] for t in tags} == {accession} and tags

        tags = wait_for(corrected_at_orthanc, timeout=60, what="the corrected copies at Orthanc",
                        service=gateway)
        assert {t["SOPInstanceUID"] for t in tags} == old_uids
        assert {t["PatientID"] for t in tags} == {"P-REC-1"}
        [record] = tags[0]["OriginalAttributesSequence"]
        assert record["ReasonForTheAttributeModification"] == "CORRECT"
        assert record["SourceOfPreviousValues"] == "tech.li"
        assert record["ModifiedAttributesSequence"][0]["AccessionNumber"] == "TYPO-7"

        # The IOCM archive: corrected copies under new UIDs in the exam's study, and the note.
        def at_archive():
            copies = [ds for ds in archive.of_class(DigitalXRayImageStorageForPresentation)
                      if ds.SOPInstanceUID not in old_uids]
            notes = archive.of_class(iocm.KEY_OBJECT_SELECTION)
            return len(copies) == 2 and len(notes) == 1 and (copies, notes[0])

        copies, note = wait_for(at_archive, timeout=60, what="copies and note at the archive",
                                service=gateway)
        assert {ds.StudyInstanceUID for ds in copies} == {
            hand.requested_procedure.study_instance_uid
        }
        assert {ds.AccessionNumber for ds in copies} == {accession}
        title = note.ConceptNameCodeSequence[0]
        assert (title.CodeValue, title.CodingSchemeDesignator) == ("113038", "DCM")
        assert note.StudyInstanceUID == images[0].StudyInstanceUID
        assert note.AccessionNumber == "TYPO-7"  # filed where the archive holds the old copies
        assert {
            item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            for item in note.ContentSequence if item.ValueType == "IMAGE"
        } == old_uids

        # The right exam follows the images; the other one was never touched.
        wait_for(lambda: status_of(hand) == StepStatus.COMPLETED, timeout=60,
                 what="the linked exam COMPLETED once stable", service=gateway)
        wait_for(lambda: len(his.received) >= 2, timeout=60, what="IP and CM at the HIS",
                 service=gateway)
    assert status_of(chest) == StepStatus.SCHEDULED
    assert [str(m.segment("ORC")[5]) for m in his.received] == ["IP", "CM"]
    assert {str(m.segment("OBR")[18]) for m in his.received} == {accession}
