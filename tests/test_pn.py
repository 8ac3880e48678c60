import pytest
from hypothesis import given
from hypothesis import strategies as st

from worklist.pn import PersonName


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
