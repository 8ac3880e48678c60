"""DICOM Person Name (PN) values with their three component groups.

A PN value is ``alphabetic=ideographic=phonetic``, each group ``family^given^middle^prefix^suffix``
(PS3.5 6.2.1). Chinese hospitals send all three (``Wang^XiaoDong=王^小东=``), so ris keeps each
group on its own and joins them back exactly, trailing empty groups and components dropped.
"""

from __future__ import annotations

from dataclasses import dataclass


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
