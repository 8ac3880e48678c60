"""``ris import-worklist``: .wl files become patient, order, requested procedure and step."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from pydicom import dcmread

from tests.mwl.wlfiles import Spread, write_worklist
from worklist.models import AuditEvent, Order, Patient, ScheduledProcedureStep, StepStatus

pytestmark = [pytest.mark.django_db]

SPREAD = Spread(6, dt.date(2030, 3, 1), days=2, seed=5)


def run(*paths) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_worklist", *map(str, paths), stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_each_file_becomes_patient_order_procedure_and_step(tmp_path):
    files = write_worklist(tmp_path / "WLM", SPREAD)
    code, out, _ = run(tmp_path / "WLM")
    assert code == 0 and "6 imported, 0 unchanged, 0 failed" in out
    source = dcmread(files[0])
    step = ScheduledProcedureStep.objects.select_related(
        "station", "requested_procedure__order__patient"
    ).get(sps_id=source.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID)
    order = step.requested_procedure.order
    assert order.accession_number == source.AccessionNumber
    assert order.source == Order.Source.IMPORT
    assert step.requested_procedure.study_instance_uid == source.StudyInstanceUID
    assert step.station.ae_title == source.ScheduledProcedureStepSequence[0].ScheduledStationAETitle
    assert str(order.patient.person_name) == str(source.PatientName)
    assert step.status == StepStatus.SCHEDULED


def test_reimporting_the_same_files_changes_nothing(tmp_path):
    write_worklist(tmp_path / "WLM", SPREAD)
    run(tmp_path / "WLM")
    counts = (Patient.objects.count(), Order.objects.count(), AuditEvent.objects.count())
    code, out, _ = run(tmp_path / "WLM")
    assert code == 0 and "0 imported, 6 unchanged, 0 failed" in out
    assert (Patient.objects.count(), Order.objects.count(), AuditEvent.objects.count()) == counts


def test_a_bad_file_is_reported_by_name_and_skipped(tmp_path):
    files = write_worklist(tmp_path / "WLM", SPREAD)
    (tmp_path / "WLM" / "garbage.wl").write_bytes(b"this is not DICOM at all")
    no_patient = dcmread(files[1])
    del no_patient.PatientID
    no_patient.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID = "OTHER"
    no_patient.save_as(tmp_path / "WLM" / "no-patient.wl")
    code, out, err = run(tmp_path / "WLM")
    assert code == 1
    assert "6 imported, 0 unchanged, 2 failed" in out
    assert "garbage.wl" in err and "no-patient.wl: no Patient ID" in err
    assert not ScheduledProcedureStep.objects.filter(sps_id="OTHER").exists()


def test_a_missing_path_is_an_error(tmp_path):
    with pytest.raises(Exception, match="no such file"):
        call_command("import_worklist", str(tmp_path / "nowhere"))


def _one_file(tmp_path, *, name: str, charset="ISO_IR 192"):
    """One worklist file of the generated spread with its Patient's Name replaced."""
    paths = write_worklist(tmp_path / "ONE", Spread(1, dt.date(2030, 3, 1), days=1, seed=9))
    ds = dcmread(paths[0])
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.save_as(paths[0], enforce_file_format=True)
    return paths[0], ds


def test_a_hanzi_only_name_in_a_file_is_imported_as_ideographic_with_derived_pinyin(
    tmp_path, settings
):
    settings.RIS_PINYIN_STYLE = "syllable"
    path, ds = _one_file(tmp_path, name="王^小东")
    code, out, _ = run(path)
    assert code == 0, out
    patient = Patient.objects.get(patient_id=ds.PatientID)
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东"
    assert patient.name_alphabetic_derived


def test_an_ir58_file_with_annex_k_escapes_is_stored_as_clean_unicode(tmp_path, settings):
    from worklist.dicom import iso2022_ir58

    settings.RIS_PINYIN_STYLE = "syllable"
    value = iso2022_ir58("Wang^XiaoDong=王^小东", "PN")
    placeholder = b"Z" * len(value)
    path, ds = _one_file(tmp_path, name=placeholder.decode(), charset=["", "ISO 2022 IR 58"])
    path.write_bytes(path.read_bytes().replace(placeholder, value))
    assert b"\x1b$)A" in path.read_bytes()
    code, out, _ = run(path)
    assert code == 0, out
    patient = Patient.objects.get(patient_id=ds.PatientID)
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东"
    assert "\x1b" not in patient.name_ideographic
