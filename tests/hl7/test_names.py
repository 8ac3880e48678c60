"""PID-5 names with Chinese characters: which PN group they go to and the Pinyin ris derives.

The message is handled in process exactly as the MLLP listener hands it over (``handler.handle``).
"""

from __future__ import annotations

import pytest

from ris.hl7 import handler
from tests.hl7.conftest import orm, read_ack
from worklist import services
from worklist.audit import Actor
from worklist.models import Patient

pytestmark = pytest.mark.django_db(transaction=True)


def handle(message: bytes):
    return read_ack(handler.handle(message, "test"))


def utf8(message: bytes) -> bytes:
    # MSH-18 "UNICODE UTF-8": the message's own declaration of its encoding.
    head, rest = message.split(b"\r", 1)
    return head + b"||||||UNICODE UTF-8\r" + rest


@pytest.fixture(autouse=True)
def _syllable_style(settings):
    settings.RIS_PINYIN_STYLE = "syllable"


def test_pid5_in_hanzi_without_xpn8_is_the_ideographic_group_with_derived_pinyin(catalogue):
    assert handle(utf8(orm("ZH-1", "PL-ZH1", name="王^小东"))).code == "AA"
    patient = Patient.objects.get(patient_id="P1001")
    assert patient.name_ideographic == "王^小东"
    assert patient.name_alphabetic == "Wang^XiaoDong"
    assert patient.name_alphabetic_derived


def test_xpn8_is_respected_and_a_sent_romanisation_is_not_derived(catalogue):
    name = "Wong^SiuTung^^^^^L^A~王^小东^^^^^L^I"
    assert handle(utf8(orm("ZH-2", "PL-ZH2", name=name))).code == "AA"
    patient = Patient.objects.get(patient_id="P1001")
    assert str(patient.person_name) == "Wong^SiuTung=王^小东"
    assert not patient.name_alphabetic_derived


def test_latin_pid5_without_xpn8_stays_alphabetic(catalogue):
    assert handle(orm("ZH-3", "PL-ZH3", name="Doe^Jane")).code == "AA"
    patient = Patient.objects.get(patient_id="P1001")
    assert (patient.name_alphabetic, patient.name_ideographic) == ("Doe^Jane", "")


def test_a_corrected_romanisation_is_not_overwritten_by_a_later_hanzi_only_order(catalogue):
    handle(utf8(orm("ZH-4", "PL-ZH4", name="单^田芳")))
    patient = Patient.objects.get(patient_id="P1001")
    assert patient.name_alphabetic == "Shan^TianFang"
    services.patient_update(
        patient=patient, actor=Actor.system("desk"), name="Sin^TinFong=单^田芳",
        replace_romanisation=True,
    )
    assert handle(utf8(orm("ZH-5", "PL-ZH5", name="单^田芳"))).code == "AA"
    patient.refresh_from_db()
    assert str(patient.person_name) == "Sin^TinFong=单^田芳"


def test_a_derived_romanisation_follows_a_corrected_hanzi_name(catalogue):
    handle(utf8(orm("ZH-6", "PL-ZH6", name="王^小东")))
    assert handle(utf8(orm("ZH-7", "PL-ZH7", name="王^晓东"))).code == "AA"
    patient = Patient.objects.get(patient_id="P1001")
    assert str(patient.person_name) == "Wang^XiaoDong=王^晓东"
    assert patient.name_alphabetic_derived


def test_gb18030_message_from_a_chinese_his_gets_the_same_names(catalogue):
    message = orm("ZH-8", "PL-ZH8", name="欧阳^修", sender="CHIS").decode().encode("gb18030")
    assert handle(message).code == "AA"
    patient = Patient.objects.get(patient_id="P1001")
    assert str(patient.person_name) == "Ouyang^Xiu=欧阳^修"
