"""Chinese character sets on the worklist, with DCMTK findscu as the real peer: ISO 2022 IR 58
queries and answers as PS3.5 Annex K writes them, and the Device's incoming character set for
modalities that send GB18030 unlabelled or labelled ISO_IR 192."""

from __future__ import annotations

import pytest
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from tests.mwl.conftest import committed, device, standard_worklist
from tests.mwl.dcmtk import dcmdump, findscu
from worklist.charsets import IncomingCharacterSet
from worklist.dicom import iso2022_ir58
from worklist.models import CharacterSet

pytestmark = [pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        standard_worklist()
        device("IR58SCU", character_set=CharacterSet.GB2312)
        device("GBSCU", character_set=CharacterSet.GB18030,
               incoming_character_set=IncomingCharacterSet.GB18030)
        device("UTF8SCU", character_set=CharacterSet.UTF8,
               incoming_character_set=IncomingCharacterSet.UTF8)
        yield ris_service.dicom_port


def raw_text(ds: Dataset, keyword: str, vr: str, value: bytes) -> None:
    """An element written with exactly these bytes (pydicom would re-encode a str)."""
    tag = Tag(keyword)
    if len(value) % 2:
        value += b" "
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


def name_query(name_bytes: bytes, charset: str | list[str] | None) -> Dataset:
    query = Dataset()
    if charset is not None:
        query.SpecificCharacterSet = charset
    query.PatientID = ""
    raw_text(query, "PatientName", "PN", name_bytes)
    return query


def test_an_ir58_query_with_annex_k_escapes_matches(port):
    query = name_query(iso2022_ir58("王^小东", "PN"), ["", "ISO 2022 IR 58"])
    assert b"\x1b$)A" in iso2022_ir58("王^小东", "PN")
    result = findscu(port, query=query, calling_ae="IR58SCU")
    assert result.final == "Success", result.output
    assert result.patient_ids == ["PID-01"]


def test_an_ir58_wild_card_query_matches(port):
    query = name_query(iso2022_ir58("王*", "PN"), ["", "ISO 2022 IR 58"])
    assert findscu(port, query=query, calling_ae="IR58SCU").patient_ids == ["PID-01"]


def test_an_ir58_answer_has_escapes_only_before_chinese_and_dcmdump_does_not_warn(port):
    query = name_query(b"", None)
    query.PatientID = "PID-01"
    result = findscu(port, query=query, calling_ae="IR58SCU")
    (raw,) = result.raw
    # PS3.5 Annex K (K.2): the alphabetic group in ASCII, ESC $ ) A before each ideographic
    # component; the phonetic group in ASCII.
    assert b"Wang^XiaoDong=\x1b$)A\xcd\xf5^\x1b$)A\xd0\xa1\xb6\xab=wang^xiao dong" in raw
    dump = dcmdump(raw, "+U8")
    assert "Wang^XiaoDong=王^小东=wang^xiao dong" in dump
    assert "W:" not in dump and "E:" not in dump, dump


def test_an_unlabelled_gb18030_query_from_a_gb18030_device_matches(port):
    query = name_query("王*".encode("gb18030"), None)
    assert findscu(port, query=query, calling_ae="GBSCU").patient_ids == ["PID-01"]


def test_gb18030_labelled_iso_ir_192_is_detected_and_logged_with_the_device(
    port, ris_service
):
    value = "李^娜".encode("gb18030")
    query = name_query(b"Z" * len(value), "ISO_IR 192")
    result = findscu(port, query=query, calling_ae="LIARSCU", patch=(b"Z" * len(value), value))
    assert result.patient_ids == ["PID-06"]
    assert "LIARSCU declared ISO_IR 192 (UTF-8) but sent GB18030 text" in ris_service.log()


def test_a_device_set_to_gb18030_overrides_a_false_label(port):
    query = name_query("李^娜".encode("gb18030"), "ISO_IR 100")
    assert findscu(port, query=query, calling_ae="GBSCU").patient_ids == ["PID-06"]


def test_an_unlabelled_utf8_query_from_a_utf8_device_matches(port):
    query = name_query("李^娜".encode(), None)
    assert findscu(port, query=query, calling_ae="UTF8SCU").patient_ids == ["PID-06"]


def test_a_gb18030_device_gets_gb18030_answers_and_dcmdump_does_not_warn(port):
    query = name_query(b"", "GB18030")
    query.PatientID = "PID-06"
    (raw,) = findscu(port, query=query, calling_ae="GBSCU").raw
    assert "Li^Na=李^娜".encode("gb18030") in raw
    dump = dcmdump(raw, "+U8")
    assert "Li^Na=李^娜" in dump and "W:" not in dump


# --- the same keys typed on findscu's command line (-k), as a site engineer tests a scanner ----
# DCMTK puts the bytes of a -k value into the query as they are, so the Chinese name goes in
# already encoded in the character set that the (0008,0005) key declares.


def test_an_ir58_name_key_on_the_command_line_matches(port):
    keys = [b"SpecificCharacterSet=\\ISO 2022 IR 58",
            b"PatientName=" + iso2022_ir58("王^小东", "PN"), "PatientID"]
    result = findscu(port, keys, calling_ae="IR58SCU")
    assert result.final == "Success", result.output
    assert result.patient_ids == ["PID-01"]
    (raw,) = result.raw
    assert b"\x1b$)A\xcd\xf5^\x1b$)A\xd0\xa1\xb6\xab" in raw
    assert "W:" not in dcmdump(raw, "+U8")


def test_an_ir58_wild_card_key_on_the_command_line_matches(port):
    keys = [b"SpecificCharacterSet=\\ISO 2022 IR 58",
            b"PatientName=" + iso2022_ir58("王*", "PN"), "PatientID"]
    assert findscu(port, keys, calling_ae="IR58SCU").patient_ids == ["PID-01"]


def test_a_gb18030_name_key_on_the_command_line_matches(port):
    keys = [b"SpecificCharacterSet=GB18030", b"PatientName=" + "王^小东".encode("gb18030"),
            "PatientID"]
    result = findscu(port, keys, calling_ae="GBSCU")
    assert result.patient_ids == ["PID-01"], result.output
    (raw,) = result.raw
    assert "王^小东".encode("gb18030") in raw


def test_a_utf8_wild_card_key_on_the_command_line_matches(port):
    keys = ["SpecificCharacterSet=ISO_IR 192", "PatientName=王*", "PatientID"]
    result = findscu(port, keys, calling_ae="UTF8SCU")
    assert result.patient_ids == ["PID-01"], result.output
