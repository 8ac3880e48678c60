"""Patient's Age as stated (worklist.age): parsing what people and HIS send, and what is served."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from worklist.age import parse_age, served_age
from worklist.models import Patient


@given(st.integers(0, 999), st.sampled_from("YMWD"))
def test_an_age_string_reads_back_as_itself(number, unit):
    text = f"{number:03d}{unit}"
    assert parse_age(text) == text
    assert parse_age(str(number), unit) == text


@pytest.mark.parametrize(("text", "unit", "expected"), [
    ("45", "", "045Y"), ("45 岁", "", "045Y"), ("3个月", "", "003M"), ("8", "mo", "008M"),
    ("2", "wk", "002W"), ("5", "d", "005D"), ("45", "a", "045Y"), ("", "", ""),
])
def test_ages_as_people_and_his_write_them(text, unit, expected):
    assert parse_age(text, unit) == expected


@pytest.mark.parametrize("text", ["forty", "45 furlongs", "1000", "-3", "4.5"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_age(text)


def test_a_whole_birth_date_wins_over_a_stated_age():
    today = dt.date(2026, 12, 4)
    assert served_age(age="045Y", birth_date=dt.date(1980, 3, 12), precision="", on=today) == ""
    assert served_age(age="045Y", birth_date=None, precision="", on=today) == "045Y"
    # a birth year alone: its age in years (DA cannot carry a year)
    assert served_age(age="", birth_date=dt.date(1980, 1, 1), precision="Y", on=today) == "046Y"
    assert served_age(age="", birth_date=dt.date(1980, 12, 1), precision="M", on=today) == "046Y"
    assert served_age(age="", birth_date=None, precision="", on=today) == ""


def test_the_front_desk_registers_an_age_without_a_birth_date_and_reads_it(desk):
    response = desk.post(reverse("web:patient_create"), {
        "patient_id": "AGE-1", "ideographic_family": "王", "ideographic_given": "小东",
        "age_value": "45", "age_unit": "Y",
    })
    assert response.status_code == 302
    patient = Patient.objects.get(patient_id="AGE-1")
    assert (patient.age, patient.birth_date) == ("045Y", None)
    page = desk.get(reverse("web:patient_detail", kwargs={"pk": patient.pk})).content.decode()
    assert "45 years" in page
    desk.post(reverse("web:set_language"), {"language": "zh-hans"})
    page = desk.get(reverse("web:patient_detail", kwargs={"pk": patient.pk})).content.decode()
    assert "45 岁" in page and "年龄" in page
    listed = desk.get(reverse("web:patient_list"), {"q": "wxd"}).content.decode()
    assert "45 岁" in listed


def test_the_edit_form_shows_the_stated_age(desk):
    desk.post(reverse("web:patient_create"), {
        "patient_id": "AGE-2", "alphabetic_family": "Li", "age_value": "3", "age_unit": "M",
    })
    patient = Patient.objects.get(patient_id="AGE-2")
    page = desk.get(reverse("web:patient_edit", kwargs={"pk": patient.pk})).content.decode()
    assert 'name="age_value" value="3"' in page
    assert '<option value="M" selected>' in page


def test_the_api_takes_an_age_and_answers_it(client_as):
    from ris.roles import Role

    client = client_as(Role.FRONT_DESK)
    response = client.post("/api/v1/patients/", {"patient_id": "AGE-3", "name": "=王^小东",
                                              "age": "45"}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["age"] == "045Y"
    refused = client.post("/api/v1/patients/", {"patient_id": "AGE-4", "name": "Li^Na",
                                             "age": "old"}, content_type="application/json")
    assert refused.status_code == 400 and "age" in refused.json()
