"""The catalogue CSV import page: good rows load, bad rows are listed with their line."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from ris.roles import Role
from worklist.models import Device, ProcedureType

CSV = (
    "code,scheme,meaning,modality,duration_minutes,stations\n"
    "CTHEAD,L,CT head,CT,15,CT1\n"
    "BAD,L,Broken,XX,15,CT1\n"
    "MRBRAIN,L,MR brain,MR,forty,MR1\n"
    "USABD,L,US abdomen,US,20,US1\n"
)


def _upload(client, text: str, encoding: str = "utf-8"):
    return client.post(
        reverse("web:catalog_import"),
        {"file": SimpleUploadedFile("catalog.csv", text.encode(encoding), "text/csv")},
    )


def _page(response) -> str:
    """The whole streamed page, read to the end (which loads the rows)."""
    return b"".join(response.streaming_content).decode()


def test_import_loads_good_rows_and_reports_bad_ones_by_line(client_as):
    response = _upload(client_as(Role.ADMIN), CSV)
    html = _page(response)
    assert response.status_code == 200
    assert "<strong>2</strong> rows loaded" in html
    assert "<td>3</td><td>modality &#x27;XX&#x27;" in html
    assert "<td>4</td><td>duration_minutes &#x27;forty&#x27;" in html
    assert set(ProcedureType.objects.values_list("code_value", flat=True)) == {"CTHEAD", "USABD"}


def test_import_page_shows_progress_while_the_rows_load(client_as):
    response = _upload(client_as(Role.ADMIN), CSV)
    chunks = iter(response.streaming_content)
    head = b"".join(next(chunks) for _ in range(2)).decode()  # the page so far, and the bar
    assert "Importing 4 rows" in head
    assert not ProcedureType.objects.exists()
    first = next(chunks).decode()
    assert '<progress value="1" max="4">' in first and "1 of 4 rows" in first
    assert list(ProcedureType.objects.values_list("code_value", flat=True)) == ["CTHEAD"]
    rest = b"".join(chunks).decode()
    assert [f'<progress value="{n}" max="4">' in rest for n in (2, 3, 4)] == [True] * 3
    assert rest.index("4 of 4 rows") < rest.index("rows loaded")


def test_a_gb18030_file_is_read(client_as):
    text = "code,scheme,meaning,modality,duration_minutes,stations\nCTC,L,头部CT平扫,CT,15,CT1\n"
    _page(_upload(client_as(Role.ADMIN), text, "gb18030"))
    assert ProcedureType.objects.get(code_value="CTC").code_meaning == "头部CT平扫"


def test_a_wrong_header_is_a_form_error_and_loads_nothing(client_as):
    response = _upload(client_as(Role.ADMIN), "a,b\n1,2\n")
    assert "file" in response.context["form"].errors
    assert not ProcedureType.objects.exists()
    assert not Device.objects.exists()


def test_a_binary_file_is_refused(client_as):
    response = client_as(Role.ADMIN).post(
        reverse("web:catalog_import"),
        {"file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00\x81\x00" * 10)},
    )
    assert response.status_code == 200
    assert "file" in response.context["form"].errors
