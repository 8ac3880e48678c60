"""A lean reader of HL7 v2 ER7 text: segments, fields, repetitions, components, escapes.

Why not hl7apy on the inbound path: ``hl7apy.parser.parse_message`` builds a typed element tree of
every field of every segment and takes 7-10 ms for a 600-byte ORM (docs/BENCHMARKS.md, "HL7
inbound"), which caps one connection near 100 msg/s before any database work. ris reads a few
dozen fields of a handful of segments; splitting strings on demand costs ~0.05 ms per message
(same section). hl7apy stays where its typing pays: building the messages ris sends
(``ris.hl7.notifications``).

Text is decoded from bytes before splitting (``decode``): in GB 18030 the second byte of a
character may equal ``|``, ``^``, ``~`` or ``\\``, so splitting bytes would cut characters in two.
Escapes are resolved after splitting, so ``\\S\\`` stays a literal ``^`` inside a component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ris.hl7 import charsets

_SEGMENT_SPLIT = re.compile(r"\r\n|\r|\n")


class ParseError(ValueError):
    """The bytes are not an HL7 v2 message ris can read (HL7 error code in ``code``)."""

    def __init__(self, message: str, code: str = "100") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Delimiters:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return f"{self.component}{self.repetition}{self.escape}{self.subcomponent}"


def read_header(raw: bytes) -> dict[str, str]:
    """MSH fields that must be known before decoding (sender, control ID, MSH-18).

    MSH-1..MSH-18 are ASCII in every feed seen, so latin-1 (which never fails) reads them at
    their byte positions; the rest of the message is decoded later with the right codec.
    """
    first = _SEGMENT_SPLIT.split(raw[:8192].decode("latin-1"), 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return {}
    sep = first[3]
    fields = ["MSH", sep, *first[4:].split(sep)]
    enc = fields[2]
    comp = enc[0] if enc else "^"
    rep = enc[1] if len(enc) > 1 else "~"

    def get(n: int) -> str:
        return fields[n] if n < len(fields) else ""

    return {
        "separator": sep,
        "encoding": enc,
        "sending_app": get(3),
        "sending_facility": get(4),
        "receiving_app": get(5),
        "receiving_facility": get(6),
        "message_type": get(9),
        "control_id": get(10),
        "processing_id": get(11),
        "version": get(12).split(comp)[0],
        # Enhanced acknowledgement mode (HL7 table 0155), ris.hl7.ack.conditions
        "accept_ack_type": get(15),
        "application_ack_type": get(16),
        # MSH-18 repeats: the first repetition is the character set of the message.
        "charset": get(18).split(rep)[0],
        "component": comp,
    }


def decode(raw: bytes, charset: str) -> str:
    """Bytes -> text in the message's character set; ``UnicodeDecodeError`` if they don't fit."""
    return raw.decode(charsets.codec_for(charset))


class Segment:
    """One segment; ``field(n)`` is SEG-n (for MSH too: MSH-1 is the field separator)."""

    __slots__ = ("name", "fields", "delims", "codec")

    def __init__(self, name: str, fields: list[str], delims: Delimiters, codec: str) -> None:
        self.name = name
        self.fields = fields
        self.delims = delims
        self.codec = codec

    def __repr__(self) -> str:
        return f"<Segment {self.name} {len(self.fields) - 1} fields>"

    def raw(self, n: int) -> str:
        """SEG-n exactly as sent (escapes unresolved, all repetitions)."""
        return self.fields[n] if n < len(self.fields) else ""

    def repetitions(self, n: int) -> list[str]:
        raw = self.raw(n)
        return raw.split(self.delims.repetition) if raw else []

    def components(self, n: int, rep: int = 0) -> list[str]:
        """The components of repetition ``rep`` of SEG-n, first subcomponent each, unescaped."""
        reps = self.repetitions(n)
        if rep >= len(reps):
            return []
        return [
            unescape(c.split(self.delims.subcomponent)[0], self.delims, self.codec)
            for c in reps[rep].split(self.delims.component)
        ]

    def get(self, n: int, component: int = 1, subcomponent: int = 1, rep: int = 0) -> str:
        """SEG-n.component.subcomponent of repetition ``rep`` (1-based like the standard)."""
        reps = self.repetitions(n)
        if rep >= len(reps):
            return ""
        comps = reps[rep].split(self.delims.component)
        if component > len(comps):
            return ""
        subs = comps[component - 1].split(self.delims.subcomponent)
        if subcomponent > len(subs):
            return ""
        return unescape(subs[subcomponent - 1], self.delims, self.codec).strip()


class Message:
    """A parsed message: its segments in order, and the header fields ris routes on."""

    def __init__(self, segments: list[Segment], delims: Delimiters) -> None:
        self.segments = segments
        self.delims = delims
        self.msh = segments[0]

    def first(self, name: str) -> Segment | None:
        for segment in self.segments:
            if segment.name == name:
                return segment
        return None

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]

    @property
    def message_type(self) -> tuple[str, str, str]:
        """(MSH-9.1, MSH-9.2, MSH-9.3): ``("ORM", "O01", "")``."""
        return (self.msh.get(9, 1), self.msh.get(9, 2), self.msh.get(9, 3))

    @property
    def version(self) -> str:
        return self.msh.get(12)

    @property
    def control_id(self) -> str:
        return self.msh.get(10)


def parse(text: str, codec: str = "ascii") -> Message:
    """Split ER7 text into segments; raise ``ParseError`` if it is not a v2 message."""
    lines = [line for line in _SEGMENT_SPLIT.split(text) if line.strip()]
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise ParseError("the message does not start with an MSH segment", "100")
    head = lines[0]
    sep = head[3]
    enc = head[4:].split(sep, 1)[0]
    if len(enc) < 3 or sep in enc or sep.isalnum():
        raise ParseError(f"MSH-1/MSH-2 delimiters are not valid: {head[3:8]!r}", "102")
    delims = Delimiters(
        field=sep,
        component=enc[0],
        repetition=enc[1],
        escape=enc[2],
        subcomponent=enc[3] if len(enc) > 3 else "&",
    )
    segments = [Segment("MSH", ["MSH", sep, *head[4:].split(sep)], delims, codec)]
    for line in lines[1:]:
        fields = line.split(sep)
        name = fields[0].strip()
        if len(name) != 3 or not name.isalnum():
            raise ParseError(f"not a segment: {line[:20]!r}", "100")
        segments.append(Segment(name, fields, delims, codec))
    return Message(segments, delims)


def unescape(value: str, delims: Delimiters, codec: str = "ascii") -> str:
    """Resolve HL7 escape sequences (v2.5 2.7): delimiters, hex data, line breaks."""
    esc = delims.escape
    if esc not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = value.find(esc, i + 1)
        if end < 0:  # a lone escape character: keep it as text
            out.append(value[i:])
            break
        out.append(_escape_sequence(value[i + 1 : end], delims, codec))
        i = end + 1
    return "".join(out)


def _escape_sequence(seq: str, delims: Delimiters, codec: str) -> str:
    simple = {
        "F": delims.field,
        "S": delims.component,
        "T": delims.subcomponent,
        "R": delims.repetition,
        "E": delims.escape,
        ".br": "\n",
        "H": "",  # start/end of highlighting: no meaning in a database field
        "N": "",
    }
    if seq in simple:
        return simple[seq]
    if seq[:1] == "X":
        try:
            return bytes.fromhex(seq[1:]).decode(codec, errors="replace")
        except ValueError:
            return ""
    # \Cxxyy\ and \Mxxyyzz\ switch ISO 2022 character sets; \Zxx\ is locally defined; \.sp\ etc.
    # are formatting. None carries text ris can store, so they are dropped.
    return ""


def escape(value: str, delims: Delimiters = Delimiters()) -> str:
    """The inverse of ``unescape`` for the delimiters (used when writing fields)."""
    if not value:
        return value
    esc = delims.escape
    value = value.replace(esc, f"{esc}E{esc}")
    for char, code in (
        (delims.field, "F"),
        (delims.component, "S"),
        (delims.subcomponent, "T"),
        (delims.repetition, "R"),
    ):
        value = value.replace(char, f"{esc}{code}{esc}")
    return value.replace("\r", f"{esc}.br{esc}").replace("\n", f"{esc}.br{esc}")
