"""Loading the procedure catalogue from a spreadsheet export."""

import pytest
from django.core.management import call_command

from worklist.audit import Actor
from worklist.catalog import CatalogFormatError, import_catalog
from worklist.models import Device, ProcedureOrderCode, ProcedureType

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
HEADER = "code,scheme,meaning,modality,duration_minutes,stations\n"


def test_rows_and_unknown_stations_are_created():
    report = import_catalog(
        HEADER + "CTHEAD,L,CT head,CT,15,CT1 CT2\nUSABD,L,US abdomen,US,20,US1\n", actor=ACTOR
    )
    assert (report.created, report.updated, report.errors) == (2, 0, [])
    head = ProcedureType.objects.get(code_value="CTHEAD")
    assert head.default_duration_minutes == 15
    assert sorted(head.stations.values_list("ae_title", flat=True)) == ["CT1", "CT2"]
    assert Device.objects.get(ae_title="US1").modality == "US"
    assert ProcedureOrderCode.objects.get(code="CTHEAD").procedure_type == head


def test_reimport_updates_rows_in_place():
    import_catalog(HEADER + "CTHEAD,L,CT head,CT,15,CT1\n", actor=ACTOR)
    report = import_catalog(HEADER + "CTHEAD,L,CT head plain,CT,25,CT2\n", actor=ACTOR)
    assert (report.created, report.updated) == (0, 1)
    head = ProcedureType.objects.get(code_value="CTHEAD")
    assert (head.code_meaning, head.default_duration_minutes) == ("CT head plain", 25)
    assert list(head.stations.values_list("ae_title", flat=True)) == ["CT2"]


def test_bad_rows_are_reported_by_line_and_the_rest_load():
    report = import_catalog(
        HEADER
        + "CTHEAD,L,CT head,CT,15,CT1\n"
        + "BAD,L,Bad modality,XX,15,CT1\n"
        + "MRB,L,MR brain,MR,forty,MR1\n"
        + "USABD,L,US abdomen,US,20,US1\n",
        actor=ACTOR,
    )
    assert report.created == 2
    assert [line for line, _ in report.errors] == [3, 4]
    assert "modality 'XX'" in report.errors[0][1]
    assert "forty" in report.errors[1][1]
    assert not ProcedureType.objects.filter(code_value__in=["BAD", "MRB"]).exists()


def test_wrong_header_is_refused_before_loading_anything():
    with pytest.raises(CatalogFormatError, match="duration_minutes"):
        import_catalog("code,scheme,meaning,modality\nX,L,Y,CT\n", actor=ACTOR)


def test_command_reads_gb18030_and_reports_errors_with_file_and_line(tmp_path, capsys):
    path = tmp_path / "catalog.csv"
    path.write_bytes((HEADER + "CTHEAD,L,头颅CT平扫,CT,15,CT1\nX,L,,CT,15,\n").encode("gb18030"))
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_catalog", str(path), encoding="gb18030")
    assert exit_info.value.code == 1
    assert ProcedureType.objects.get(code_value="CTHEAD").code_meaning == "头颅CT平扫"
    assert f"{path}:3: meaning is empty" in capsys.readouterr().err


def test_command_falls_back_to_gb18030_when_the_file_is_not_utf8(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_bytes((HEADER + "MRBRAIN,L,头部磁共振平扫,MR,30,MR1\n").encode("gb18030"))
    call_command("import_catalog", str(path))
    assert ProcedureType.objects.get(code_value="MRBRAIN").code_meaning == "头部磁共振平扫"
