"""worklist.pn: PN groups, where a name's text goes, Pinyin romanisation, the derived flag,
name profiles and search keys; and the patient services every intake calls."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worklist import pn, services
from worklist.audit import Actor
from worklist.pn import (
    NameProfile,
    PersonName,
    PinyinStyle,
    for_profile,
    query_key,
    resolve,
    romanise,
    search_key,
    search_keys,
)


def test_three_groups_are_split():
    pn = PersonName.parse("Wang^XiaoDong=王^小东=wang^xiao dong")
    assert pn.groups == ("Wang^XiaoDong", "王^小东", "wang^xiao dong")


def test_trailing_empty_groups_and_components_are_dropped():
    assert str(PersonName.parse("Wang^XiaoDong=王^小东=")) == "Wang^XiaoDong=王^小东"
    assert str(PersonName.parse("Doe^John^^^")) == "Doe^John"


def test_ideographic_only_name_keeps_its_leading_separator():
    assert str(PersonName.parse("=王^小东")) == "=王^小东"


def test_more_than_three_groups_is_refused():
    with pytest.raises(ValueError):
        PersonName.parse("a=b=c=d")


component = st.text(
    alphabet=st.characters(blacklist_characters="=^\\", blacklist_categories=("Cs", "Cc")),
    max_size=8,
).map(str.strip)


@given(st.lists(st.lists(component, min_size=1, max_size=5), min_size=1, max_size=3))
def test_parse_and_str_round_trip(groups):
    text = "=".join("^".join(parts).rstrip("^") for parts in groups).rstrip("=")
    assert str(PersonName.parse(text)) == text


# --- placing ideographic text, romanisation, the derived flag (worklist.pn) -------------------


SYLLABLE = PinyinStyle.SYLLABLE


def test_hanzi_only_name_gets_pinyin_with_capitalised_syllables():
    assert romanise("王^小东", style=SYLLABLE) == "Wang^XiaoDong"
    assert romanise("王小东", style=SYLLABLE) == "Wang^XiaoDong"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        (PinyinStyle.SYLLABLE, "Wang^XiaoDong"),
        (PinyinStyle.TITLE, "Wang^Xiaodong"),
        (PinyinStyle.UPPER, "WANG^XIAODONG"),
        (PinyinStyle.OFF, ""),
    ],
)
def test_capitalisation_follows_the_configured_convention(style, expected):
    assert romanise("王^小东", style=style) == expected


def test_convention_comes_from_the_setting(settings):
    settings.RIS_PINYIN_STYLE = "upper"
    assert romanise("王小东") == "WANG^XIAODONG"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("单田芳", "Shan^TianFang"),
        ("曾小贤", "Zeng^XiaoXian"),
        ("解缙", "Xie^Jin"),
        ("仇英", "Qiu^Ying"),
        ("区志", "Ou^Zhi"),
        ("查良镛", "Zha^LiangYong"),
        ("朴树", "Piao^Shu"),
    ],
)
def test_surnames_use_their_surname_reading(name, expected):
    assert romanise(name, style=SYLLABLE) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("尉迟恭", "Yuchi^Gong"),
        ("欧阳修", "Ouyang^Xiu"),
        ("司马光", "Sima^Guang"),
        ("诸葛亮", "Zhuge^Liang"),
        ("上官婉儿", "Shangguan^WanEr"),
        ("东方朔", "Dongfang^Shuo"),
        ("皇甫谧", "Huangfu^Mi"),
        ("令狐冲", "Linghu^Chong"),
        ("慕容复", "Murong^Fu"),
        ("长孙无忌", "Zhangsun^WuJi"),
        ("宇文泰", "Yuwen^Tai"),
        ("夏侯惇", "Xiahou^Dun"),
        ("歐陽修", "Ouyang^Xiu"),
    ],
)
def test_compound_surnames_are_split_and_read_as_one_surname(name, expected):
    assert romanise(name, style=SYLLABLE) == expected


def test_a_two_character_name_is_never_a_compound_surname_alone():
    assert romanise("司马", style=SYLLABLE) == "Si^Ma"


def test_given_name_never_uses_the_surname_table():
    assert romanise("王单", style=SYLLABLE) == "Wang^Dan"
    assert romanise("单^单", style=SYLLABLE) == "Shan^Dan"
    assert romanise("李^曾", style=SYLLABLE) == "Li^Ceng"


def test_explicit_components_are_kept_as_the_split():
    # a compound surname written with ^ after its first character is two PN components
    assert romanise("欧^阳修", style=SYLLABLE) == "Ou^YangXiu"


def test_rare_characters_outside_gb2312_are_romanised():
    assert romanise("𠮷^田", style=SYLLABLE) == "Ji^Tian"
    assert romanise("王^堃", style=SYLLABLE) == "Wang^Kun"


def test_latin_letters_inside_the_ideographic_group_are_kept():
    assert romanise("李^A", style=SYLLABLE) == "Li^A"
    assert romanise("王^小东2", style=SYLLABLE) == "Wang^XiaoDong2"


def test_names_that_are_not_chinese_get_no_pinyin():
    assert romanise("やまだ^たろう", style=SYLLABLE) == ""
    assert romanise("김^민준", style=SYLLABLE) == ""
    assert romanise("", style=SYLLABLE) == ""
    assert romanise("Doe^John", style=SYLLABLE) == ""


def test_syllable_boundary_apostrophe_in_run_together_conventions():
    assert romanise("张晓安", style=PinyinStyle.TITLE) == "Zhang^Xiao'an"
    assert romanise("张晓安", style=SYLLABLE) == "Zhang^XiaoAn"


def test_single_group_hanzi_goes_to_the_ideographic_group():
    assert PersonName.parse("王^小东").placed() == PersonName("", "王^小东")
    assert PersonName.parse("Wang^XiaoDong").placed() == PersonName("Wang^XiaoDong")
    assert pn.canonical("王^小东") == "=王^小东"


def test_resolve_derives_and_flags_a_hanzi_only_name(settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    resolved = resolve("王^小东")
    assert str(resolved.name) == "Wang^XiaoDong=王^小东"
    assert resolved.alphabetic_derived


def test_resolve_keeps_a_sent_romanisation_as_not_derived():
    resolved = resolve("Wong^SiuTung=王^小东")
    assert str(resolved.name) == "Wong^SiuTung=王^小东"
    assert not resolved.alphabetic_derived


def test_resolve_keeps_a_corrected_romanisation_over_a_hanzi_only_update():
    resolved = resolve(
        "=王^小冬", current=PersonName("Wong^SiuTung", "王^小东"), current_derived=False
    )
    assert str(resolved.name) == "Wong^SiuTung=王^小冬"
    assert not resolved.alphabetic_derived


def test_resolve_rederives_a_derived_romanisation_on_update(settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    resolved = resolve(
        "=王^小冬", current=PersonName("Wang^XiaoDong", "王^小东"), current_derived=True
    )
    assert str(resolved.name) == "Wang^XiaoDong=王^小冬"
    assert resolved.alphabetic_derived
    assert str(resolve("=李^四", current=PersonName("Wang^XiaoDong", "王^小东"),
                       current_derived=True).name) == "Li^Si=李^四"


def test_search_key_folds_case_spaces_separators_and_tones():
    assert search_key("WANG^XIAODONG") == "wangxiaodong"
    assert search_key("wang xiaodong") == "wangxiaodong"
    assert search_key("Wáng Xiǎodōng") == "wangxiaodong"
    assert search_key("Lü") == "lu"
    assert search_key("Müller") == "muller"


# hypothesis ------------------------------------------------------------------------------------

#: Common given-name characters whose reading pypinyin knows (GB2312 and beyond).
_GIVEN_CHARS = "小东明华伟芳娜敏静丽强磊军洋勇艳杰娟涛超秀霞平刚桂英堃𠮷"
_SINGLE_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭" + "".join(
    pn.SURNAME_READINGS
)
_COMPOUND = [k for k in pn.COMPOUND_SURNAMES if len(k) == 2]

surname = st.one_of(st.sampled_from(list(_SINGLE_SURNAMES)), st.sampled_from(_COMPOUND))
given_name = st.text(alphabet=_GIVEN_CHARS, min_size=1, max_size=3)


@given(surname, given_name)
def test_romanisation_has_two_components_of_ascii_letters(family, given_name_):
    text = romanise(f"{family}^{given_name_}", style=SYLLABLE)
    family_py, given_py = text.split("^")
    assert family_py.isascii() and family_py.isalpha() and family_py[0].isupper()
    assert given_py.isascii() and given_py.isalpha()
    # one capital per syllable, as many syllables as characters in the given name
    assert sum(ch.isupper() for ch in given_py) == len(given_name_)


@given(surname, given_name)
def test_one_run_splits_like_explicit_components(family, given_name_):
    if family not in pn.COMPOUND_SURNAMES and len(family + given_name_) < 2:
        return
    assert romanise(family + given_name_, style=SYLLABLE) == romanise(
        f"{family}^{given_name_}", style=SYLLABLE
    )


@given(st.sampled_from(list(pn.SURNAME_READINGS.items())), given_name)
def test_surname_table_reading_is_used_for_the_surname(entry, given_name_):
    character, reading = entry
    assert romanise(f"{character}^{given_name_}", style=PinyinStyle.UPPER).split("^")[0] == (
        reading.upper()
    )


@given(st.sampled_from(list(pn.COMPOUND_SURNAMES.items())), given_name)
def test_compound_surname_reading_is_used_for_the_surname(entry, given_name_):
    characters, reading = entry
    assert romanise(characters + given_name_, style=PinyinStyle.UPPER).split("^")[0] == (
        reading.upper()
    )


@given(surname, given_name, st.sampled_from([s for s in PinyinStyle if s is not PinyinStyle.OFF]))
def test_resolved_name_round_trips_through_its_pn_string(family, given_name_, style):
    ideographic = f"{family}^{given_name_}"
    name = PersonName(romanise(ideographic, style=style), ideographic)
    assert PersonName.parse(str(name)) == name
    assert search_key(name.alphabetic) == search_key(romanise(ideographic, style=SYLLABLE))


latin = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij", min_size=1, max_size=4)


@given(surname, latin)
def test_mixed_latin_and_hanzi_keeps_the_latin_part(family, latin_part):
    text = romanise(f"{family}^{latin_part}", style=SYLLABLE)
    assert text.split("^")[1] == latin_part[:1].upper() + latin_part[1:]


# --- through the patient services (every intake calls them) ------------------------------------


ACTOR = Actor.system("test")


@pytest.mark.django_db
def test_registered_hanzi_only_patient_is_stored_with_derived_pinyin(settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    patient, _ = services.patient_upsert(patient_id="P1", name="=王^小东", actor=ACTOR)
    patient.refresh_from_db()
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东"
    assert patient.name_alphabetic_derived
    assert (patient.family_name, patient.given_name) == ("Wang", "XiaoDong")


@pytest.mark.django_db
def test_front_desk_correction_survives_an_update_without_alphabetic_group(settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    patient, _ = services.patient_upsert(patient_id="P1", name="王^小东", actor=ACTOR)
    services.patient_update(
        patient=patient, actor=ACTOR, name="Wong^SiuTung=王^小东", replace_romanisation=True
    )
    services.patient_upsert(patient_id="P1", name="=王^小东", actor=ACTOR)
    patient.refresh_from_db()
    assert str(patient.person_name) == "Wong^SiuTung=王^小东"
    assert not patient.name_alphabetic_derived


@pytest.mark.django_db
def test_an_emptied_alphabetic_group_in_the_form_asks_for_the_suggestion_again(settings):
    settings.RIS_PINYIN_STYLE = "syllable"
    patient, _ = services.patient_upsert(patient_id="P1", name="Wong^SiuTung=王^小东", actor=ACTOR)
    services.patient_update(patient=patient, actor=ACTOR, name="=王^小东",
                            replace_romanisation=True)
    patient.refresh_from_db()
    assert str(patient.person_name) == "Wang^XiaoDong=王^小东"
    assert patient.name_alphabetic_derived


# --- name profiles --------------------------------------------------------------------------


WANG = PersonName("Wang^XiaoDong", "王^小东", "wang^xiao dong")


def test_all_groups_profile_sends_the_name_as_stored():
    assert for_profile(WANG, NameProfile.ALL) == WANG


def test_alphabetic_profile_sends_the_pinyin_alone():
    assert str(for_profile(WANG, NameProfile.ALPHABETIC)) == "Wang^XiaoDong"


def test_alphabetic_profile_never_sends_a_blank_name():
    assert str(for_profile(PersonName("", "王^小东"), NameProfile.ALPHABETIC)) == "王^小东"


def test_ideographic_first_profile_moves_the_hanzi_first():
    assert str(for_profile(WANG, NameProfile.IDEOGRAPHIC_FIRST)) == (
        "王^小东=Wang^XiaoDong=wang^xiao dong"
    )
    assert for_profile(PersonName("Doe^John"), NameProfile.IDEOGRAPHIC_FIRST) == PersonName(
        "Doe^John"
    )


@given(st.sampled_from(list(NameProfile)), surname, given_name)
def test_every_profile_keeps_a_parseable_name(profile, family, given_name_):
    ideographic = f"{family}^{given_name_}"
    name = PersonName(romanise(ideographic, style=SYLLABLE), ideographic)
    sent = for_profile(name, profile)
    assert PersonName.parse(str(sent)) == sent
    assert sent.alphabetic


# --- search keys ------------------------------------------------------------------------------



def test_search_keys_of_a_chinese_name():
    keys = search_keys(PersonName("Wang^XiaoDong", "王^小东"))
    assert {"wangxiaodong", "xiaodong", "xiaodongwang", "wxd", "王小东", "小东"} <= keys


def test_search_keys_use_the_surname_readings_and_compound_surnames():
    assert {"shantianfang", "stf"} <= search_keys(PersonName("", "单^田芳"))
    assert {"ouyangxiu", "oyx"} <= search_keys(PersonName("", "欧阳修"))
    assert {"yuchigong", "ycg"} <= search_keys(PersonName("", "尉迟^恭"))


def test_u_umlaut_is_found_as_v_and_u():
    assert {"lvbu", "lubu"} <= search_keys(PersonName("", "吕^布"))
    assert query_key("Lü Bu") == "lubu"


@given(surname, given_name)
def test_every_typed_form_of_the_pinyin_is_a_prefix_of_a_key(family, given_name_):
    ideographic = f"{family}^{given_name_}"
    name = PersonName(romanise(ideographic, style=SYLLABLE), ideographic)
    keys = search_keys(name)
    typed = [
        name.alphabetic, name.alphabetic.replace("^", " "), name.alphabetic.upper(),
        name.alphabetic.lower().replace("^", ""), f"{family}{given_name_}", given_name_,
    ]
    for text in typed:
        assert any(key.startswith(query_key(text)) for key in keys), text


@pytest.mark.django_db
def test_the_name_search_is_an_index_look_up(django_assert_max_num_queries):
    from django.db import connection

    from worklist.models import PatientNameKey
    from worklist.selectors import patients_matching

    services.patient_upsert(patient_id="P1", name="=王^小东", actor=ACTOR)
    with connection.cursor() as cursor:
        key_sql, key_params = (
            PatientNameKey.objects.filter(key__gte="wxd", key__lt="wxe")
            if connection.vendor == "sqlite"
            else PatientNameKey.objects.filter(key__startswith="wxd")
        ).values_list("patient_id").query.sql_with_params()
        patient_sql, patient_params = patients_matching("wxd").query.sql_with_params()
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {key_sql}", key_params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "USING" in plan and "INDEX worklist_patientnamekey_key" in plan, plan
            cursor.execute(f"EXPLAIN QUERY PLAN {patient_sql}", patient_params)
            plan = " ".join(str(row[-1]) for row in cursor.fetchall())
            assert "SCAN worklist_patient " not in plan + " ", plan
            assert "merged_into" not in plan, plan
        else:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {key_sql}", key_params)
            plan = " ".join(row[0] for row in cursor.fetchall())
            assert "worklist_patientnamekey_key" in plan, plan
    with django_assert_max_num_queries(2):
        assert [p.patient_id for p in patients_matching("wxd")] == ["P1"]
