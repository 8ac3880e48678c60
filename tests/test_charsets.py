"""worklist.charsets: which character set a peer's text is read in."""

from __future__ import annotations

import logging

from hypothesis import given
from hypothesis import strategies as st

from worklist.charsets import decoding_character_set

GB = "王^小东".encode("gb18030")


def test_ascii_text_is_read_as_labelled_whatever_the_device_says():
    assert decoding_character_set("ISO_IR 192", [b"Doe^John"], incoming="GB18030") is None


def test_a_device_incoming_set_overrides_the_label():
    assert decoding_character_set("ISO_IR 100", [GB], incoming="GB18030") == "GB18030"
    assert decoding_character_set(None, [GB], incoming="GB18030") == "GB18030"
    assert decoding_character_set("GB18030", [GB], incoming="GB18030") is None


def test_false_utf8_label_on_gb18030_bytes_is_detected_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="ris.charsets"):
        assert decoding_character_set("ISO_IR 192", [GB], source="CT9") == "GB18030"
    assert "CT9 declared ISO_IR 192" in caplog.text


def test_real_utf8_is_left_alone():
    assert decoding_character_set("ISO_IR 192", ["王^小东".encode()]) is None


def test_unlabelled_text_is_utf8_when_valid_else_latin1():
    assert decoding_character_set(None, ["王".encode()]) == "ISO_IR 192"
    assert decoding_character_set(None, [b"M\xfcller"]) == "ISO_IR 100"
    assert decoding_character_set(None, [b"M\xfcller"], guess_unlabelled=False) is None


@given(st.text(alphabet="王李张小东娜明华欧阳修单曾𠮷堃^", min_size=1, max_size=8))
def test_gb18030_behind_a_utf8_label_always_reads_back(text):
    raw = text.encode("gb18030")
    term = decoding_character_set("ISO_IR 192", [raw])
    # some GB18030 byte strings are valid UTF-8 too; those are read as labelled
    expected = None if _is_utf8(raw) else "GB18030"
    assert term == expected


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
