"""Notes ris writes in English (performed steps, gateway matches, step reasons) read in zh-Hans.

Each sample is a note as its writer words it (mpps.services, mpps.forwarding, worklist.services);
the common ones are also produced by the real writers in tests/web/test_zh_pages.py.
"""

from __future__ import annotations

import pytest
from django.utils import translation

from tests.web.test_zh_pages import english_words
from web.notes import _CLAUSES, translate_note

SAMPLES = {
    "item 1: no scheduled step has SPS ID SPS-9": "第 1 项：没有预约检查的预约检查步骤号 SPS-9",
    "no scheduled step has accession A9": "没有预约检查的检查号 A9与之相符",
    "accession A1 names 2 steps; link the PPS by hand": "检查号 A1对应 2 个检查",
    "SPS ID S1 belongs to accession A2, not A3": "属于检查号 A2，而不是 A3",
    "study 1.2.3 belongs to requested procedure RP1, not RP2": "属于申请检查 RP1",
    "SPS ID S1 is for patient P1, the modality sent P2": "属于患者 P1；设备发送的是 P2",
    "step S1 is completed and cannot become started": "检查 S1 当前为已完成，不能变为检查中",
    "matched by Accession Number; step S1 is CANCELED": "按检查号匹配；检查 S1 已取消",
    "linked to S1, S2 by admin": "已由 admin 关联到 S1, S2",
    "dismissed by admin: phantom": "已由 admin 忽略：phantom",
    "matched by Study Instance UID": "按检查实例 UID 匹配",
    "matched by Patient ID, modality and day": "按患者 ID、设备类型和日期匹配",
    "no order with this Study Instance UID or Accession Number, and no step of patient P1 for CT "
    "today": "患者 P1 今天也没有 CT 检查",
    "no order with this Study Instance UID or Accession Number": "没有申请单具有此检查实例 UID",
    "patient P1 has 2 CT steps today (S1, S2): ambiguous, link the study by hand": "（S1, S2）",
    "MPPS PPS1 from CT1: discontinued, no meaning given (110514, DCM)": "已中止，未说明原因",
    "MPPS PPS1 from CT1": "来自 CT1 的 MPPS PPS1",
    "images received: first instance at the gateway": "已收到图像",
    "study stable: no new instance for 600 s (4 received)": "600 秒内无新图像",
    "UPS claimed": "已通过 UPS 认领",
    "UPS COMPLETED": "UPS COMPLETED",
    "HL7 SC CM": "HL7 状态更新 CM",
    "undo": "已撤销",
    "order A1 has no scheduled step this PPS can be linked to": "申请单 A1 没有",
    "PPS PPS1 is already linked to these steps": "已执行检查步骤 PPS1 已关联",
    "choose at least one scheduled step to link the PPS to": "请至少选择",
    "PPS PPS1 is not an exception": "不是异常",
    "say why this PPS belongs to no order": "请说明",
}

#: Facts the samples carry (IDs, codes, free text typed by staff): not translated.
FACTS = ["SPS-9", "A9", "A1", "A2", "A3", "S1", "S2", "RP1", "RP2", "P1", "P2", "1.2.3", "admin",
         "phantom", "CT1", "PPS1", "CT", "CM", "COMPLETED", "110514", "DCM", "at the gateway",
         "4 received"]


@pytest.mark.parametrize("note", SAMPLES)
def test_each_note_reads_in_chinese_with_its_facts(note):
    with translation.override("zh-hans"):
        said = translate_note(note)
    assert SAMPLES[note] in said, said
    assert english_words([said], FACTS + ["MPPS", "UPS", "HL7", "UID", "ID"]) == [], said


def test_every_pattern_has_a_sample():
    used = {pattern.pattern for pattern, _say in _CLAUSES
            for note in SAMPLES for clause in note.replace("; link", "\0").split("; ")
            if pattern.fullmatch(clause.replace("\0", "; link"))}
    assert used == {pattern.pattern for pattern, _say in _CLAUSES}


def test_in_english_a_note_is_shown_as_written():
    with translation.override("en"):
        assert translate_note("MPPS PPS1 from CT1") == "MPPS PPS1 from CT1"
