"""MSH-18 character sets (HL7 table 0211) and the Python codecs that decode them.

HIS feeds spell the same set in many ways (``GB 18030-2000``, ``GB18030``, ``GB 18030``,
``UNICODE UTF-8``, ``UTF-8``), so names are normalised (upper case, spaces, hyphens and
underscores dropped) before lookup. An empty MSH-18 means the sender's configured default, and
without one the HL7 default ASCII (v2.5 2.15.9.18).
"""

from __future__ import annotations

import re

#: normalised MSH-18 value -> Python codec
_CODECS: dict[str, str] = {
    "ASCII": "ascii",
    "USASCII": "ascii",
    "UNICODEUTF8": "utf-8",
    "UTF8": "utf-8",
    # v2.3-2.4 "UNICODE" did not say which encoding; every feed seen in practice means UTF-8.
    "UNICODE": "utf-8",
    "GB18030": "gb18030",
    "GB180302000": "gb18030",
    "GB180302005": "gb18030",
    "GB180302022": "gb18030",
    # GB 2312 and GBK are subsets of GB 18030: decoding them as GB 18030 is exact.
    "GB2312": "gb18030",
    "GBK": "gb18030",
    "BIG5": "big5",
    "ISOIR87": "iso2022_jp",
    "ISOIR159": "iso2022_jp_2",
    "KSX1001": "euc_kr",
    "KSC5601": "euc_kr",
    "UNICODEUTF16": "utf-16",
    "UNICODEUTF32": "utf-32",
}
for _n, _codec in {
    "1": "latin-1",
    "2": "iso8859-2",
    "3": "iso8859-3",
    "4": "iso8859-4",
    "5": "iso8859-5",
    "6": "iso8859-6",
    "7": "iso8859-7",
    "8": "iso8859-8",
    "9": "iso8859-9",
    "15": "iso8859-15",
}.items():
    _CODECS[f"8859{_n}"] = _codec
    _CODECS[f"ISO8859{_n}"] = _codec

_NOISE = re.compile(r"[\s\-_/]")

#: The MSH-18 value ris writes for each codec it sends in.
MSH18_FOR_CODEC = {
    "ascii": "ASCII",
    "latin-1": "8859/1",
    "utf-8": "UNICODE UTF-8",
    "gb18030": "GB 18030-2000",
}


class UnknownCharset(ValueError):
    """MSH-18 names a character set that ris cannot decode."""


def normalise(name: str) -> str:
    return _NOISE.sub("", name).upper()


def codec_for(name: str) -> str:
    """The Python codec for an MSH-18 value (its first repetition); raise UnknownCharset."""
    key = normalise(name)
    if not key:
        return "ascii"
    try:
        return _CODECS[key]
    except KeyError:
        raise UnknownCharset(f"unsupported character set (MSH-18) {name!r}") from None


def is_supported(name: str) -> bool:
    try:
        codec_for(name)
    except UnknownCharset:
        return False
    return True


def msh18_for(name: str) -> str:
    """The canonical MSH-18 spelling for a configured character set name."""
    codec = codec_for(name)
    return MSH18_FOR_CODEC.get(codec, name)


def stored_text(raw: bytes | memoryview, charset: str) -> str:
    """A stored message as text in its own character set, for people reading the message log.

    A character set ris cannot decode falls back to Latin-1 so that the bytes stay readable.
    """
    try:
        return bytes(raw).decode(codec_for(charset), errors="replace")
    except UnknownCharset:
        return bytes(raw).decode("latin-1")


def ack_text(ack: bytes | memoryview | None) -> str:
    """The ACK ris answered with, as text: ris writes ACKs in UTF-8 unless MSH-18 said otherwise.

    An accept and an application acknowledgement (enhanced mode) read one after the other.
    """
    # The reply separator of ris.hl7.ack.join_replies (an end block and a start block)
    data = bytes(ack or b"").replace(b"\x1c\x0d\x0b", b"\r")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
