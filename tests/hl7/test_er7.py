"""The lean ER7 reader, the character sets of MSH-18 and the ACK builder (no database)."""

from __future__ import annotations

import hl7
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ris.hl7 import charsets, er7
from ris.hl7.ack import build_ack

MSH = "MSH|^~\\&|HIS|HOSP|RIS|RAD|20261130120000||ORM^O01|C1|P|2.3.1"


def parse(*segments: str) -> er7.Message:
    return er7.parse("\r".join([MSH, *segments]))


def test_fields_components_and_repetitions_are_numbered_like_the_standard():
    message = parse("PID|1||A1^^^HOSP^MR~B2^^^INS^SS||Doe^Jane")
    pid = message.first("PID")
    assert message.msh.get(9, 2) == "O01"
    assert message.msh.get(1) == "|"
    assert (pid.get(3), pid.get(3, 4), pid.get(3, 5, rep=1)) == ("A1", "HOSP", "SS")
    assert pid.components(5) == ["Doe", "Jane"]


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("line\\.br\\next", "line\nnext"),
        ("M\\XC3BC\\ller", "Müller"),
        ("\\H\\bold\\N\\", "bold"),
    ],
)
def test_escape_sequences_are_decoded(escaped, text):
    assert er7.unescape(escaped, er7.Delimiters(), "utf-8") == text


def test_an_escaped_component_separator_does_not_split_the_field():
    pid = parse("PID|1||X||O'Neil\\S\\Byrne^Anne").first("PID")
    assert pid.components(5) == ["O'Neil^Byrne", "Anne"]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_escape_then_unescape_gives_the_text_back(text):
    delims = er7.Delimiters()
    text = text.replace("\r", "").replace("\n", "")
    assert er7.unescape(er7.escape(text, delims), delims, "utf-8") == text


def test_other_delimiters_declared_in_msh_are_used():
    message = er7.parse("MSH#*$@%#HIS#H#RIS#R#2026##ADT*A08#C9#P#2.5\rPID#1##P1*x*y*HOSP")
    assert message.message_type == ("ADT", "A08", "")
    assert message.first("PID").get(3, 4) == "HOSP"


@pytest.mark.parametrize(
    ("msh18", "codec"),
    [
        ("", "ascii"),
        ("ASCII", "ascii"),
        ("8859/1", "latin-1"),
        ("UNICODE UTF-8", "utf-8"),
        ("UTF-8", "utf-8"),
        ("GB 18030-2000", "gb18030"),
        ("GB18030", "gb18030"),
        ("GB 18030", "gb18030"),
        ("gb18030-2005", "gb18030"),
    ],
)
def test_msh18_spellings_map_to_codecs(msh18, codec):
    assert charsets.codec_for(msh18) == codec


def test_an_unknown_character_set_is_refused():
    with pytest.raises(charsets.UnknownCharset):
        charsets.codec_for("EBCDIC")


def test_gb18030_is_decoded_before_splitting():
    # 弢 is 0x8F 0x7C in GB 18030: its second byte is "|". Splitting bytes would cut it in two.
    raw = (MSH + "\rPID|1||P1||王^弢|").encode("gb18030")
    assert b"\x8f|" in raw
    message = er7.parse(raw.decode("gb18030"), "gb18030")
    assert message.first("PID").components(5) == ["王", "弢"]


def test_a_message_not_starting_with_msh_is_a_parse_error():
    with pytest.raises(er7.ParseError):
        er7.parse("PID|1||X")


def test_ack_echoes_the_control_id_swaps_the_applications_and_reads_with_python_hl7():
    header = er7.read_header(MSH.encode())
    ack = hl7.parse(build_ack(header, "AE", "unknown code X^Y", "103").decode())
    assert str(ack.segment("MSA")[1]) == "AE"
    assert str(ack.segment("MSA")[2]) == "C1"
    assert str(ack.segment("MSH")[3]) == "RIS"
    assert str(ack.segment("MSH")[5]) == "HIS"
    assert str(ack.segment("MSH")[9]) == "ACK^O01"
    assert str(ack.segment("ERR")[1]) == "^^^103&unknown code X\\S\\Y&HL70357"


def test_v25_ack_carries_err_3_and_err_8():
    header = er7.read_header(MSH.replace("2.3.1", "2.5.1").encode())
    ack = hl7.parse(build_ack(header, "AR", "unsupported", "200").decode())
    err = ack.segment("ERR")
    assert str(err[3]) == "200^Unsupported message type^HL70357"
    assert str(err[4]) == "E"
    assert str(err[8]) == "unsupported"


def test_ack_is_encoded_in_the_message_character_set():
    header = er7.read_header((MSH + "||||||GB 18030-2000").encode())
    ack = build_ack(header, "AE", "未知检查代码", "103")
    assert "未知检查代码".encode("gb18030") in ack
    assert b"GB 18030-2000" in ack
