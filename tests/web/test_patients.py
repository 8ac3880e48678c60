"""Registering, editing and finding patients, with all three PN component groups."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from ris.roles import Role
from tests.factories import PatientFactory
from worklist.models import AuditEvent, Patient

WANG = {
    "patient_id": "P100",
    "issuer": "HOSP",
    "alphabetic_family": "Wang",
    "alphabetic_given": "XiaoDong",
    "ideographic_family": "王",
    "ideographic_given": "小东",
    "phonetic_family": "wang",
    "phonetic_given": "xiao dong",
    "birth_date": "1980-03-12",
    "sex": "M",
}


def test_registering_a_patient_stores_the_three_name_groups(desk):
    response = desk.post(reverse("web:patient_create"), WANG)
    patient = Patient.objects.get(patient_id="P100", issuer="HOSP")
    assert response.status_code == 302
    assert response["Location"] == reverse("web:patient_detail", kwargs={"pk": patient.pk})
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东=wang^xiao dong"
    assert patient.birth_date == dt.date(1980, 3, 12)
    assert AuditEvent.objects.filter(action="patient.create", user__isnull=False).exists()


def test_a_patient_needs_at_least_one_name_group(desk):
    data = {k: v for k, v in WANG.items() if not k.endswith(("_family", "_given"))}
    response = desk.post(reverse("web:patient_create"), data)
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert not Patient.objects.exists()


@pytest.mark.parametrize("bad", ["Wang^Xiao", "Wang=Li", "Wang\\Li"])
def test_name_delimiters_are_refused_in_a_name_component(desk, bad):
    response = desk.post(reverse("web:patient_create"), {**WANG, "alphabetic_family": bad})
    assert response.status_code == 200
    assert "alphabetic_family" in response.context["form"].errors
    assert not Patient.objects.exists()


def test_an_invalid_birth_date_is_a_field_error(desk):
    response = desk.post(reverse("web:patient_create"), {**WANG, "birth_date": "1980-02-31"})
    assert response.status_code == 200
    assert "birth_date" in response.context["form"].errors


def test_registering_an_existing_patient_id_is_refused(desk):
    PatientFactory(patient_id="P100", issuer="HOSP")
    response = desk.post(reverse("web:patient_create"), WANG)
    assert response.status_code == 200
    assert "patient_id" in response.context["form"].errors
    assert Patient.objects.count() == 1


def test_editing_a_patient_changes_the_name_but_not_the_id(desk):
    patient = PatientFactory(patient_id="P7", issuer="HOSP", name_alphabetic="Li^Na")
    response = desk.post(
        reverse("web:patient_edit", kwargs={"pk": patient.pk}),
        {**WANG, "patient_id": "CHANGED", "ideographic_family": "李", "ideographic_given": "娜"},
    )
    patient.refresh_from_db()
    assert response.status_code == 302
    assert patient.patient_id == "P7"
    assert patient.name_ideographic == "李^娜"
    assert AuditEvent.objects.filter(action="patient.update").count() == 1


@pytest.fixture
def people(db):
    wang = PatientFactory(
        patient_id="P1", name_alphabetic="Wang^XiaoDong", name_ideographic="王^小东",
        name_phonetic="wang^xiao dong", birth_date=dt.date(1980, 3, 12),
    )
    li = PatientFactory(
        patient_id="P2", name_alphabetic="Li^Na", name_ideographic="李^娜",
        birth_date=dt.date(1992, 7, 4),
    )
    smith = PatientFactory(patient_id="P3", name_alphabetic="Smith^John", name_ideographic="")
    return {"wang": wang, "li": li, "smith": smith}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "王小东"}, ["wang"]),
        ({"q": "王"}, ["wang"]),
        ({"q": "wang xiaodong"}, ["wang"]),
        ({"q": "SMITH"}, ["smith"]),
        ({"q": "xiao dong"}, ["wang"]),
        ({"q": "P2"}, ["li"]),
        ({"birth_date": "1992-07-04"}, ["li"]),
        ({"q": "li", "birth_date": "1980-03-12"}, []),
    ],
)
def test_patient_search_finds_by_any_name_group_id_or_birth_date(
    client_as, people, query, expected
):
    response = client_as(Role.RADIOLOGIST).get(reverse("web:patient_list"), query)
    found = [p.pk for p in response.context["patients"]]
    assert found == [people[name].pk for name in expected]


def test_patient_search_with_a_bad_date_shows_an_error_not_a_crash(desk):
    response = desk.get(reverse("web:patient_list"), {"birth_date": "not-a-date"})
    assert response.status_code == 200
    assert response.context["form"].errors["birth_date"]


def test_patient_page_lists_the_patients_orders(desk, ct_head):
    from tests.factories import make_order

    order = make_order(procedure_type=ct_head)
    response = desk.get(reverse("web:patient_detail", kwargs={"pk": order.patient.pk}))
    assert order.accession_number in response.content.decode()


def test_unknown_patient_is_404(desk):
    assert desk.get(reverse("web:patient_detail", kwargs={"pk": 999999})).status_code == 404


HANZI_ONLY = {"patient_id": "P300", "ideographic_family": "王", "ideographic_given": "小东"}


def test_a_hanzi_only_registration_gets_the_pinyin_suggestion(desk, settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    desk.post(reverse("web:patient_create"), HANZI_ONLY)
    patient = Patient.objects.get(patient_id="P300")
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东"
    assert patient.name_alphabetic_derived


def test_the_form_suggests_pinyin_while_the_clerk_types_the_hanzi(desk, settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    response = desk.get(
        reverse("web:pinyin_suggestion"),
        {"ideographic_family": "欧阳", "ideographic_given": "修", "alphabetic_family": ""},
    )
    html = response.content.decode()
    assert 'value="Ouyang"' in html and 'value="Xiu"' in html


def test_the_suggestion_never_replaces_what_the_clerk_typed(desk, settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    response = desk.get(
        reverse("web:pinyin_suggestion"),
        {
            "ideographic_family": "王", "ideographic_given": "小东",
            "alphabetic_family": "Wong", "alphabetic_given": "",
            "pinyin_suggested": "",
        },
    )
    html = response.content.decode()
    assert 'value="Wong"' in html and 'value="XiaoDong"' in html


def test_an_accepted_suggestion_stays_derived_and_a_correction_does_not(desk, settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    accepted = {**HANZI_ONLY, "alphabetic_family": "Wang", "alphabetic_given": "XiaoDong"}
    desk.post(reverse("web:patient_create"), accepted)
    patient = Patient.objects.get(patient_id="P300")
    assert patient.name_alphabetic_derived
    corrected = {**accepted, "alphabetic_given": "Xiaotung"}
    desk.post(reverse("web:patient_edit", kwargs={"pk": patient.pk}), corrected)
    patient.refresh_from_db()
    assert str(patient.person_name) == "Wang^Xiaotung=王^小东"
    assert not patient.name_alphabetic_derived


@pytest.mark.parametrize(
    "typed",
    ["王小东", "王 小东", "小东", "wang", "wang xiaodong", "wangxiaodong", "WANG^XIAODONG",
     "Wáng Xiǎodōng", "wxd", "xiaodong wang", "P301"],
)
def test_a_hanzi_only_patient_is_found_by_any_spelling(desk, typed, settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    desk.post(reverse("web:patient_create"), {**HANZI_ONLY, "patient_id": "P301"})
    desk.post(reverse("web:patient_create"), {"patient_id": "P302", "alphabetic_family": "Li",
                                             "alphabetic_given": "Na"})
    response = desk.get(reverse("web:patient_list"), {"q": typed})
    assert [p.patient_id for p in response.context["patients"]] == ["P301"]


def test_a_corrected_romanisation_still_finds_the_patient_by_the_standard_pinyin(desk):
    desk.post(reverse("web:patient_create"), {**HANZI_ONLY, "alphabetic_family": "Wong",
                                             "alphabetic_given": "SiuTung"})
    for typed in ("wong siutung", "wang xiaodong", "wxd"):
        response = desk.get(reverse("web:patient_list"), {"q": typed})
        assert [p.patient_id for p in response.context["patients"]] == ["P300"], typed


def test_search_by_name_and_birth_date_together(desk):
    desk.post(reverse("web:patient_create"), {**HANZI_ONLY, "birth_date": "1980-03-12"})
    desk.post(reverse("web:patient_create"), {**HANZI_ONLY, "patient_id": "P399",
                                             "birth_date": "1990-01-01"})
    response = desk.get(reverse("web:patient_list"), {"q": "wxd", "birth_date": "1980-03-12"})
    assert [p.patient_id for p in response.context["patients"]] == ["P300"]


def test_leaving_the_patient_id_empty_assigns_the_next_one(desk, settings):
    settings.RIS_PATIENT_ID_PATTERN = "W{counter:06d}"
    response = desk.post(reverse("web:patient_create"), {**WANG, "patient_id": ""}, follow=True)
    patient = Patient.objects.get()
    assert patient.patient_id.startswith("W") and len(patient.patient_id) == 7
    assert patient.patient_id in response.content.decode()


def test_a_patient_with_the_same_name_and_birth_date_is_shown_before_registering(desk):
    existing = PatientFactory(
        patient_id="OLD1", name_alphabetic="Wang^XiaoDong", birth_date=dt.date(1980, 3, 12)
    )
    response = desk.post(reverse("web:patient_create"), {**WANG, "patient_id": ""})
    assert response.status_code == 200
    assert response.context["duplicates"] == [existing]
    assert "OLD1" in response.content.decode()
    assert Patient.objects.count() == 1
    response = desk.post(
        reverse("web:patient_create"), {**WANG, "patient_id": "", "confirm_new": "on"}
    )
    assert response.status_code == 302
    assert Patient.objects.count() == 2
