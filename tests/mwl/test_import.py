"""``ris import-worklist``: .wl files become patient, order, requested procedure and step."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from pydicom import dcmread

from tests.mwl.wlfiles import Spread, write_worklist
from worklist.models import (
    AuditEvent,
    Device,
    Order,
    Patient,
    ScheduledProcedureStep,
    StepStatus,
)

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


def _one_item(tmp_path, name: str = "one.wl", **changes):
    """The first generated item, changed, written alone as ``name`` in ``tmp_path / 'one'``."""
    source = write_worklist(tmp_path / "gen", Spread(1, dt.date(2030, 3, 1), days=1, seed=9))[0]
    ds = dcmread(source)
    for keyword, value in changes.items():
        if keyword.startswith("sps_"):
            setattr(ds.ScheduledProcedureStepSequence[0], keyword[4:], value)
        else:
            setattr(ds, keyword, value)
    folder = tmp_path / "one"
    folder.mkdir(exist_ok=True)
    ds.save_as(folder / name)
    return folder / name


def test_multi_valued_station_ae_title_gives_one_step_per_station(tmp_path):
    path = _one_item(tmp_path, sps_ScheduledStationAETitle=["AA32", "AA33"])
    code, out, err = run(path)

    assert code == 0, err
    steps = ScheduledProcedureStep.objects.select_related("station").order_by("pk")
    assert [s.station.ae_title for s in steps] == ["AA32", "AA33"]
    assert len({s.requested_procedure_id for s in steps}) == 1
    assert not Device.objects.filter(ae_title__contains="[").exists()
    # Found again on a re-import: nothing doubles.
    code, out, _ = run(path)
    assert "0 imported, 1 unchanged" in out
    assert ScheduledProcedureStep.objects.count() == 2


def test_reimport_with_another_station_moves_the_step(tmp_path):
    run(_one_item(tmp_path, sps_ScheduledStationAETitle="CT1"))
    code, out, _ = run(_one_item(tmp_path, sps_ScheduledStationAETitle="CT2"))

    assert code == 0 and "0 imported, 0 unchanged, 0 failed; 1 updated" in out
    step = ScheduledProcedureStep.objects.get()
    assert step.station.ae_title == "CT2"
    assert AuditEvent.objects.filter(action="step.reimport").count() == 1


def test_reimport_with_another_time_moves_the_step(tmp_path):
    run(_one_item(tmp_path, sps_ScheduledProcedureStepStartTime="080000"))
    code, out, _ = run(_one_item(tmp_path, sps_ScheduledProcedureStepStartTime="093000"))

    assert "1 updated" in out
    assert timezone.localtime(ScheduledProcedureStep.objects.get().scheduled_start).time() == (
        dt.time(9, 30)
    )


def test_two_files_with_one_accession_for_two_procedures_are_two_requested_procedures(tmp_path):
    first = _one_item(tmp_path, "a.wl")
    code_item = dcmread(first).RequestedProcedureCodeSequence[0]
    code_item.CodeValue = "OTHER1"
    _one_item(
        tmp_path, "b.wl", RequestedProcedureCodeSequence=[code_item],
        sps_ScheduledProcedureStepID="SPS-B",
    )

    code, out, err = run(tmp_path / "one")

    assert code == 0, err
    assert "2 imported" in out
    order = Order.objects.get()
    procedures = list(order.procedures.order_by("pk"))
    assert [p.code_value for p in procedures][1] == "OTHER1"
    assert len(procedures) == 2
    assert len({p.study_instance_uid for p in procedures}) == 2
    # and a re-import of both finds both again
    assert "0 imported, 2 unchanged" in run(tmp_path / "one")[1]


def test_progress_shows_files_done_of_total_rate_and_time_left(tmp_path):
    write_worklist(tmp_path / "WLM", SPREAD)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_worklist", str(tmp_path / "WLM"), "--progress", stdout=out, stderr=err)

    shown = err.getvalue()
    assert "6/6" in shown and "100%" in shown and "files/s" in shown and "left" in shown


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
