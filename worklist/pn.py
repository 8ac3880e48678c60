"""DICOM Person Name (PN) values: their three component groups, where a name's text belongs, and
the Pinyin romanisation of a Chinese name. Every intake (web form, REST API, HL7 PID-5, ``.wl``
import, MPPS) goes through here, so a name is placed and romanised in one way only.

A PN value is ``alphabetic=ideographic=phonetic``, each group ``family^given^middle^prefix^suffix``
(PS3.5 6.2.1). PS3.5 Annex J/K put the Chinese characters in the ideographic group and the
romanisation in the alphabetic group (``Wang^XiaoDong=王^小东``): many modalities show only the
first group, so a Hanzi-only name gets its Pinyin derived here (``romanise``), and the row keeps
a flag saying so (``Patient.name_alphabetic_derived``) so that a romanisation somebody typed or
the HIS sent is never replaced by one computed later (``resolve``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from functools import cache


def _trim_components(group: str) -> str:
    return group.rstrip("^")


@dataclass(frozen=True)
class PersonName:
    alphabetic: str = ""
    ideographic: str = ""
    phonetic: str = ""

    @classmethod
    def parse(cls, value: str) -> PersonName:
        groups = (value or "").split("=")
        if len(groups) > 3:
            raise ValueError(f"a person name has at most three component groups: {value!r}")
        groups += [""] * (3 - len(groups))
        for group in groups:
            if group.count("^") > 4:
                raise ValueError(f"a name group has at most five components: {group!r}")
        return cls(*(_trim_components(g.strip()) for g in groups))

    @classmethod
    def from_components(
        cls,
        family: str = "",
        given: str = "",
        middle: str = "",
        prefix: str = "",
        suffix: str = "",
        *,
        group: str = "alphabetic",
    ) -> PersonName:
        text = _trim_components("^".join([family, given, middle, prefix, suffix]))
        return cls(**{group: text})

    def __str__(self) -> str:
        return "=".join([self.alphabetic, self.ideographic, self.phonetic]).rstrip("=")

    @property
    def groups(self) -> tuple[str, str, str]:
        return (self.alphabetic, self.ideographic, self.phonetic)

    def display(self) -> str:
        """A human label: the ideographic group first when there is one, then alphabetic."""
        parts = [g.replace("^", " ").strip() for g in (self.ideographic, self.alphabetic) if g]
        return " / ".join(parts)

    def placed(self) -> PersonName:
        """The same name with ideographic text in the ideographic group.

        A single-group value such as ``王^小东`` (what a HIS without XPN-8, a plain API client or a
        file-based worklist sends) parses as the alphabetic group; PS3.5 Annex J/K want it in the
        second group, with the first left for the romanisation.
        """
        if self.alphabetic and not self.ideographic and has_ideographic(self.alphabetic):
            return PersonName("", self.alphabetic, self.phonetic)
        return self


# --- which characters are ideographic -------------------------------------------------------

#: Han ideographs (CJK Unified Ideographs and their extensions, compatibility ideographs, the
#: ideographic iteration mark 々 and 〇) and the other scripts PS3.5 Annex H/I put in the
#: ideographic group: kana, Hangul.
_IDEOGRAPHIC_RANGES = (
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3400, 0x4DBF),  # extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7AF),  # Hangul syllables
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x3134F),  # extensions B-G, compatibility supplement (𠮷 is U+20BB7)
)


def _is_ideographic(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _IDEOGRAPHIC_RANGES)


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return _is_ideographic(ch) and not (0x3040 <= code <= 0x30FF or 0xAC00 <= code <= 0xD7AF)


def has_ideographic(text: str) -> bool:
    return any(_is_ideographic(ch) for ch in text)


# --- romanisation ---------------------------------------------------------------------------


class PinyinStyle(StrEnum):
    """How a derived romanisation is capitalised (setting ``RIS_PINYIN_STYLE``)."""

    #: ``Wang^XiaoDong``: every syllable capitalised, as most Chinese departments type names.
    SYLLABLE = "syllable"
    #: ``Wang^Xiaodong``: each component capitalised once (passport style, mixed case).
    TITLE = "title"
    #: ``WANG^XIAODONG``: all capitals (passport and many HIS).
    UPPER = "upper"
    #: No derivation at all (a department whose ideographic names are not Chinese).
    OFF = "off"


#: Single-character surnames whose surname reading differs from the character's usual reading
#: (pypinyin reads 单 as dan, 曾 as ceng, ...). Traditional forms beside the simplified ones.
SURNAME_READINGS: dict[str, str] = {
    "单": "shan", "單": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "区": "ou", "區": "ou",
    "查": "zha", "朴": "piao", "樸": "piao", "盖": "ge", "蓋": "ge", "覃": "qin", "缪": "miao",
    "繆": "miao", "乐": "yue", "樂": "yue", "尉": "wei", "员": "yun", "員": "yun", "贲": "ben",
    "賁": "ben", "秘": "bi", "种": "chong", "種": "chong", "召": "shao", "翟": "zhai", "祭": "zhai",
    "牟": "mu", "万": "wan", "萬": "wan", "折": "she", "宓": "fu", "逄": "pang", "阚": "kan",
    "闞": "kan", "柏": "bai", "藏": "zang", "冼": "xian", "洗": "xian", "句": "gou", "纪": "ji",
    "紀": "ji", "繁": "po", "隗": "wei", "郇": "xun", "眭": "sui", "燕": "yan", "华": "hua",
    "華": "hua", "任": "ren", "沈": "shen", "瀋": "shen", "石": "shi", "叶": "ye", "葉": "ye",
    "曲": "qu", "长": "chang", "長": "chang", "重": "chong", "黑": "he", "能": "nai", "都": "du",
    "过": "guo", "過": "guo", "难": "nan", "貟": "yun", "哈": "ha", "尚": "shang", "参": "shen",
    "行": "xing", "和": "he", "薄": "bo", "谌": "chen", "諶": "chen", "鲜": "xian", "粘": "nian",
    "蕃": "pi", "澄": "cheng", "陆": "lu", "陸": "lu", "六": "lu", "佴": "nai", "莘": "shen",
    "幺": "yao", "应": "ying", "應": "ying", "将": "jiang", "大": "da", "卜": "bu", "乜": "nie",
    "么": "yao", "朝": "chao", "庞": "pang", "龐": "pang", "传": "chuan", "曝": "pu",
}

#: Compound (two-character) surnames, read as one surname. Only taken as a surname when a given
#: name follows (欧阳修), never for a two-character name (司马 alone is Si Ma).
COMPOUND_SURNAMES: dict[str, str] = {
    "欧阳": "ouyang", "歐陽": "ouyang", "司马": "sima", "司馬": "sima", "诸葛": "zhuge",
    "諸葛": "zhuge", "上官": "shangguan", "东方": "dongfang", "東方": "dongfang",
    "皇甫": "huangfu", "令狐": "linghu", "慕容": "murong", "长孙": "zhangsun", "長孫": "zhangsun",
    "宇文": "yuwen", "夏侯": "xiahou", "尉迟": "yuchi", "尉遲": "yuchi", "司徒": "situ",
    "司空": "sikong", "公孙": "gongsun", "公孫": "gongsun", "轩辕": "xuanyuan", "軒轅": "xuanyuan",
    "端木": "duanmu", "澹台": "tantai", "闻人": "wenren", "聞人": "wenren", "赫连": "helian",
    "赫連": "helian", "呼延": "huyan", "独孤": "dugu", "獨孤": "dugu", "南宫": "nangong",
    "南宮": "nangong", "西门": "ximen", "西門": "ximen", "申屠": "shentu", "太史": "taishi",
    "钟离": "zhongli", "鍾離": "zhongli", "宗政": "zongzheng", "濮阳": "puyang", "濮陽": "puyang",
    "淳于": "chunyu", "公冶": "gongye", "公羊": "gongyang", "拓跋": "tuoba", "鲜于": "xianyu",
    "鮮于": "xianyu", "闾丘": "lvqiu", "閭丘": "lvqiu", "乐正": "yuezheng", "樂正": "yuezheng",
    "漆雕": "qidiao", "仲孙": "zhongsun", "叔孙": "shusun", "亓官": "qiguan", "司寇": "sikou",
    "颛孙": "zhuansun", "壤驷": "rangsi", "公良": "gongliang", "段干": "duangan", "百里": "baili",
    "东郭": "dongguo", "東郭": "dongguo", "左丘": "zuoqiu", "梁丘": "liangqiu", "巫马": "wuma",
    "万俟": "moqi", "萬俟": "moqi", "谷梁": "guliang", "穀梁": "guliang", "羊舌": "yangshe",
}

#: Readings of characters pypinyin's dictionary lacks (outside its data, mostly extension B).
RARE_READINGS: dict[str, str] = {
    "𠮷": "ji",  # U+20BB7, the 吉 with a long lower stroke (a surname in Japan and China)
    "𡈼": "ting",
    "𨱏": "zhuo",
    "𧿹": "bie",
}

_SYLLABLE_START_VOWELS = ("a", "o", "e")


@cache
def _pinyin():
    # Imported on first use: pypinyin loads its phrase dictionary (tens of MB) at import time, and
    # most processes (the worklist SCP, the MLLP listener on Latin sites) never romanise a name.
    import pypinyin

    return pypinyin


def _unread(text: str) -> list[str]:
    # pypinyin's handler for what it cannot read: each ideograph alone (looked up in
    # RARE_READINGS), a run of Latin letters or digits kept whole.
    return re.findall(r"[A-Za-z0-9]+|.", text)


def _read(text: str) -> list[str] | None:
    """Toneless Pinyin syllables of ``text`` (a given name or a surname without the table), with
    Latin letters and digits kept as they are; None when a Han character has no known reading."""
    out: list[str] = []
    for chunk in re.findall(r"[^\s·・]+", text):
        pieces = _pinyin().lazy_pinyin(
            chunk, style=_pinyin().Style.NORMAL, errors=_unread, v_to_u=False
        )
        for piece in pieces:
            if len(piece) == 1 and _is_ideographic(piece):
                reading = RARE_READINGS.get(piece)
                if reading is None:
                    return None
                piece = reading
            elif not piece.isascii() or not piece.isalnum():
                # Kana, Hangul or punctuation: not Chinese, no Pinyin for it.
                if any(_is_ideographic(ch) or ch.isalpha() for ch in piece):
                    return None
                continue
            out.append(piece)
    return out


def _read_surname(text: str) -> list[str] | None:
    if text in COMPOUND_SURNAMES:
        return [COMPOUND_SURNAMES[text]]
    out: list[str] = []
    for ch in text:
        if ch in SURNAME_READINGS:
            out.append(SURNAME_READINGS[ch])
            continue
        reading = _read(ch)
        if reading is None:
            return None
        out.extend(reading)
    return out


def split_chinese_name(text: str) -> tuple[str, str]:
    """A name written as one run (``欧阳修``, ``王小东``) as (surname, given name)."""
    text = text.strip()
    if len(text) >= 3 and text[:2] in COMPOUND_SURNAMES:
        return text[:2], text[2:]
    if len(text) >= 2:
        return text[:1], text[1:]
    return text, ""


def _style(syllables: list[str], style: PinyinStyle) -> str:
    if style is PinyinStyle.UPPER:
        return _joined(syllables).upper()
    if style is PinyinStyle.TITLE:
        text = _joined(syllables)
        return text[:1].upper() + text[1:]
    return "".join(s[:1].upper() + s[1:] for s in syllables)


def _joined(syllables: list[str]) -> str:
    # Hanyu Pinyin's apostrophe: a syllable starting with a, o or e after another one (Xi'an).
    out = ""
    for syllable in syllables:
        if out and syllable[:1].lower() in _SYLLABLE_START_VOWELS:
            out += "'"
        out += syllable
    return out


def current_style() -> PinyinStyle:
    from django.conf import settings

    return PinyinStyle(getattr(settings, "RIS_PINYIN_STYLE", PinyinStyle.SYLLABLE))


def romanise(ideographic: str, *, style: PinyinStyle | None = None) -> str:
    """The Pinyin alphabetic group of a Chinese ideographic group, or "" when it has none.

    ``王^小东`` and ``王小东`` both give ``Wang^XiaoDong``: family and given name go to their PN
    components; a group of one run is split after its surname (compound surnames included). The
    surname is read with ``SURNAME_READINGS``/``COMPOUND_SURNAMES`` (单 is Shan as a surname), the
    given name never is (王单 is Wang Dan). Latin letters inside the group are kept. A group with
    kana or Hangul (not Chinese), or with a character whose reading is unknown, gives "" rather
    than a guess: the front desk then types the romanisation.
    """
    if not ideographic or not any(_is_han(ch) for ch in ideographic):
        return ""
    style = style or current_style()
    if style is PinyinStyle.OFF:
        return ""
    components = ideographic.split("^")
    if len(components) == 1:
        components = list(split_chinese_name(components[0]))
    family = _read_surname(components[0].strip()) if components[0].strip() else []
    if family is None:
        return ""
    out = [_style(family, style) if family else ""]
    for component in components[1:]:
        syllables = _read(component)
        if syllables is None:
            return ""
        out.append(_style(syllables, style) if syllables else "")
    return _trim_components("^".join(out))


# --- what a device is sent -----------------------------------------------------------------


class NameProfile(StrEnum):
    """Which PN groups a Device is sent (``Device.name_profile``)."""

    #: All three groups, as stored (PS3.5 6.2.1): ``Wang^XiaoDong=王^小东=``.
    ALL = "all"
    #: The alphabetic group alone (Latin-only modalities): ``Wang^XiaoDong``, which keeps the
    #: answer in ISO_IR 100 or ISO_IR 6. A name without one is sent as its first stored group.
    ALPHABETIC = "alphabetic"
    #: The ideographic group moved first, for devices that show only the first group and do
    #: display Chinese: ``王^小东=Wang^XiaoDong``. Not what PS3.5 means by the first group, but
    #: what such a device needs to show the name its staff reads.
    IDEOGRAPHIC_FIRST = "ideographic_first"


def for_profile(name: PersonName, profile: str) -> PersonName:
    """``name`` as a device with this name profile is sent it."""
    if profile == NameProfile.ALPHABETIC:
        first = name.alphabetic or name.ideographic or name.phonetic
        return PersonName(first)
    if profile == NameProfile.IDEOGRAPHIC_FIRST and name.ideographic:
        return PersonName(name.ideographic, name.alphabetic, name.phonetic)
    return name


# --- the name a patient row keeps ----------------------------------------------------------


@dataclass(frozen=True)
class ResolvedName:
    """A name as stored: the groups, and whether the alphabetic group was derived by ris."""

    name: PersonName
    alphabetic_derived: bool


def resolve(
    incoming: PersonName | str,
    *,
    current: PersonName | None = None,
    current_derived: bool = False,
) -> ResolvedName:
    """The name to store when ``incoming`` arrives, for a new patient or over ``current``.

    - ideographic text sent in the first group moves to the ideographic group (``placed``);
    - an alphabetic group that was sent is kept as sent (not derived);
    - without one, a romanisation a person typed or the HIS sent earlier (``current`` with
      ``current_derived`` False) is kept: a later HL7 update that carries only Hanzi never
      overwrites the front desk's correction; otherwise the Pinyin is derived (derived).
    """
    pn = incoming if isinstance(incoming, PersonName) else PersonName.parse(incoming)
    pn = pn.placed()
    if pn.alphabetic:
        return ResolvedName(pn, False)
    if current is not None and current.alphabetic and not current_derived and pn.ideographic:
        return ResolvedName(PersonName(current.alphabetic, pn.ideographic, pn.phonetic), False)
    derived = romanise(pn.ideographic)
    return ResolvedName(PersonName(derived, pn.ideographic, pn.phonetic), bool(derived))


def canonical(value: str) -> str:
    """A PN as another system reported it (an MPPS), groups placed, nothing derived."""
    return str(PersonName.parse(value).placed())


def search_key(text: str) -> str:
    """Lower-case ASCII letters and digits of a name or query (``WANG^Xiao Dong`` -> wangxiaodong).

    ``unicodedata`` strips tone marks and diaeresis (``Wáng`` -> wang, ``Müller``, ``Lü`` -> u);
    the keys of a Chinese name hold both its ``v`` and ``u`` spelling of ü (``search_keys``).
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed.lower() if ch.isascii() and ch.isalnum())


# --- search keys --------------------------------------------------------------------------------

#: A search key is at most this long (the column's length).
SEARCH_KEY_MAX = 64


def _han_syllables(ideographic: str) -> list[str]:
    """One toneless syllable per character of a Chinese group (surname readings for the
    surname), [] when a character has no reading."""
    components = ideographic.split("^")
    if len(components) == 1:
        components = list(split_chinese_name(components[0]))
    family = components[0].strip()
    syllables: list[str] = []
    if family in COMPOUND_SURNAMES:
        syllables += _compound_syllables(family)
    else:
        read = _read_surname(family) if family else []
        if read is None:
            return []
        syllables += read
    for component in components[1:]:
        read = _read(component)
        if read is None:
            return []
        syllables += read
    return syllables


def _compound_syllables(family: str) -> list[str]:
    out: list[str] = []
    for ch in family:
        read = _read(ch)
        out += read or []
    # the compound's own reading wins for the first letters (尉迟 is yu chi, not wei chi)
    reading = COMPOUND_SURNAMES[family]
    if len(out) == 2 and not reading.startswith(out[0]):
        for cut in range(1, len(reading)):
            if reading[cut:].startswith(out[1]) or reading[cut:][:1] == out[1][:1]:
                return [reading[:cut], reading[cut:]]
    return out if "".join(out) == reading else [reading]


def search_keys(name: PersonName) -> set[str]:
    """Every key a patient with this name is found by, each matched by prefix.

    The whole name and the given name alone, from each group: lower-case ASCII for the
    alphabetic and phonetic groups (``wangxiaodong``, ``xiaodong``, and ``xiaodongwang`` for
    who types the given name first), the characters for the ideographic group (``王小东``,
    ``小东``), and for a Chinese ideographic group its Pinyin and initials (``wangxiaodong``,
    ``wxd``) whatever romanisation is stored (``Wong^SiuTung`` is still found by ``wang``).
    """
    keys: set[str] = set()
    for group in (name.alphabetic, name.phonetic):
        if not group:
            continue
        components = group.split("^")
        keys.add(search_key(group))
        if len(components) > 1:
            keys.add(search_key(components[1]))
            keys.add(search_key(components[1] + components[0]))
    ideographic = name.ideographic
    if ideographic:
        components = ideographic.split("^")
        keys.add(_compact(ideographic))
        if len(components) > 1:
            keys.add(_compact(components[1]))
        elif len(ideographic) >= 2:
            keys.add(_compact(split_chinese_name(ideographic)[1]))
        syllables = _han_syllables(ideographic) if any(_is_han(c) for c in ideographic) else []
        if syllables:
            full = "".join(syllables).lower()
            keys.update({full, full.replace("v", "u")})
            keys.add("".join(s[:1] for s in syllables).lower())
            pinyin = romanise(ideographic, style=PinyinStyle.UPPER)
            if "^" in pinyin:
                keys.add(search_key(pinyin.split("^", 1)[1]))
    return {key[:SEARCH_KEY_MAX] for key in keys if key}


def _compact(text: str) -> str:
    return "".join(ch for ch in text if ch not in "^= \u3000")


def query_key(text: str) -> str:
    """What a typed search is compared with: the characters of a Chinese query without spaces
    or separators (``王 小东`` -> 王小东), else ``search_key`` (``WANG^XIAODONG`` and
    ``wang xiaodong`` -> wangxiaodong)."""
    if has_ideographic(text):
        return _compact(text.strip())[:SEARCH_KEY_MAX]
    return search_key(text)[:SEARCH_KEY_MAX]
