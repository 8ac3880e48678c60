"""Chinese patients end to end: a Hanzi-only web registration and a Hanzi-only HL7 order, then
DCMTK findscu from a Latin-only, a GB18030, an ISO 2022 IR 58 and a UTF-8 device, each with its
own name profile; dcmdump checks the bytes and that DCMTK has nothing to warn about."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from pydicom import Dataset

from ris.hl7 import handler
from ris.roles import Role
from tests.factories import make_order
from tests.hl7.conftest import orm, read_ack
from tests.mwl.conftest import committed, device
from tests.mwl.dcmtk import dcmdump, findscu
from tests.web.conftest import make_user
from worklist.models import CharacterSet, NameProfile, Patient, ProcedureType

pytestmark = [pytest.mark.dcmtk]


@pytest.fixture(scope="module")
def port(ris_service, django_db_blocker):
    with committed(django_db_blocker):
        ct = device("ZHCT1", modality="CT", station_name="ZHCT1", allow_overbooking=True)
        cthead = ProcedureType.objects.create(
            code_value="CTHEAD", code_scheme="L", code_meaning="CT head", modality="CT",
            description="CT head", default_duration_minutes=15,
        )
        cthead.stations.add(ct)
        # the front desk registers 王小东 with the Hanzi only
        desk = Client()
        desk.force_login(make_user("desk-zh", Role.FRONT_DESK))
        response = desk.post(
            reverse("web:patient_create"),
            {"patient_id": "ZH-WEB-1", "ideographic_family": "王", "ideographic_given": "小东"},
        )
        assert response.status_code == 302
        make_order(patient=Patient.objects.get(patient_id="ZH-WEB-1"), procedure_type=cthead,
                   station=ct)
        # the HIS orders for 欧阳修 with PID-5 in Hanzi and no XPN-8
        message = orm("ZH-PROF-1", "PL-ZH-PROF", name="欧阳^修", patient_id="ZH-HL7-1")
        head, rest = message.split(b"\r", 1)
        ack = read_ack(handler.handle(head + b"||||||UNICODE UTF-8\r" + rest, "test"))
        assert ack.code == "AA", ack
        device("LATINSCU", character_set=CharacterSet.LATIN1,
               name_profile=NameProfile.ALPHABETIC)
        device("ASCIISCU", character_set=CharacterSet.ASCII, name_profile=NameProfile.ALPHABETIC)
        device("GBSCU", character_set=CharacterSet.GB18030)
        device("IR58SCU", character_set=CharacterSet.GB2312)
        device("UTF8SCU", character_set=CharacterSet.UTF8,
               name_profile=NameProfile.IDEOGRAPHIC_FIRST)
        yield ris_service.dicom_port


def answer(port: int, patient_id: str, calling_ae: str) -> tuple[Dataset, bytes, str, str]:
    query = Dataset()
    query.PatientID = patient_id
    query.PatientName = ""
    result = findscu(port, query=query, calling_ae=calling_ae)
    assert result.final == "Success", result.output
    (raw,) = result.raw
    dump = dcmdump(raw)  # (0008,0005) as sent
    converted = dcmdump(raw, "+U8")  # the text as DCMTK reads it
    for text in (dump, converted):
        assert "W:" not in text and "E:" not in text, text
    return result.responses[0], raw, dump, converted


@pytest.mark.parametrize("calling_ae", ["LATINSCU", "ASCIISCU"])
def test_a_latin_only_device_gets_the_pinyin_alone_in_plain_ascii(port, calling_ae):
    response, raw, dump, converted = answer(port, "ZH-WEB-1", calling_ae)
    assert str(response.PatientName) == "Wang^XiaoDong"
    assert raw.isascii() or "王".encode() not in raw
    assert "(0008,0005)" not in dump
    response, *_ = answer(port, "ZH-HL7-1", calling_ae)
    assert str(response.PatientName) == "Ouyang^Xiu"


def test_a_gb18030_device_gets_both_groups_in_gb18030(port):
    response, raw, dump, converted = answer(port, "ZH-WEB-1", "GBSCU")
    assert "Wang^XiaoDong=王^小东".encode("gb18030") in raw
    assert "(0008,0005) CS [GB18030]" in dump
    assert "Wang^XiaoDong=王^小东" in converted


def test_an_ir58_device_gets_escapes_only_before_the_chinese_components(port):
    response, raw, dump, converted = answer(port, "ZH-HL7-1", "IR58SCU")
    assert b"Ouyang^Xiu=\x1b$)A" + "欧阳".encode("gb2312") + b"^\x1b$)A" + "修".encode(
        "gb2312"
    ) in raw
    assert r"(0008,0005) CS [\ISO 2022 IR 58]" in dump
    assert "Ouyang^Xiu=欧阳^修" in converted


def test_a_utf8_device_showing_only_the_first_group_gets_the_hanzi_first(port):
    response, raw, dump, converted = answer(port, "ZH-WEB-1", "UTF8SCU")
    assert str(response.PatientName) == "王^小东=Wang^XiaoDong"
    assert "王^小东=Wang^XiaoDong".encode() in raw
    assert "(0008,0005) CS [ISO_IR 192]" in dump


def test_an_unknown_ae_gets_all_groups_in_utf8(port):
    response, raw, dump, converted = answer(port, "ZH-HL7-1", "SOMESCU")
    assert str(response.PatientName) == "Ouyang^Xiu=欧阳^修"
