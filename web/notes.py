"""The notes the domain writes for integrators, said in the user's language.

Performed steps, gateway studies and step statuses carry short English notes that ris writes
(``mpps.services``: "item 1: no scheduled step has SPS ID X"; ``mpps.forwarding``: "matched by
Accession Number"; a step's reason "MPPS PPS1 from CT1"). The API and the logs show them as
written; a person working in another language reads each clause here, with the facts (IDs, AE
titles, times) kept as they are. A clause no pattern knows is shown as written, so the patterns
must follow the writers' wording: the page test walking every screen in zh-Hans
(tests/web/test_zh_pages.py) renders the notes the real writers produce for the demo department
and fails on English, and tests/web/test_notes.py holds one sample per pattern. (Storing notes as
codes with parameters would remove the coupling; the API's consumers read the English today.)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils.translation import get_language
from django.utils.translation import gettext as _

from worklist.models import StepStatus


def _named(text: str) -> str:
    """``SPS ID X``, ``requested procedure X``, ``accession X``, ``study X`` as people say it."""
    for prefix, label in (
        ("SPS ID ", lambda: _("SPS ID")),
        ("requested procedure ", lambda: _("Requested procedure ID")),
        ("accession ", lambda: _("Accession number")),
        ("study ", lambda: _("Study Instance UID")),
    ):
        if text.startswith(prefix):
            return f"{label()} {text[len(prefix):]}"
    return text


def _status(text: str) -> str:
    """A step status written by its (English) label or code, in the user's language."""
    for status in StepStatus:
        if text.strip().lower() in (status.value.lower(), str(status.label).lower()):
            return str(status.label).lower()
    return text


_M = re.Match

#: (pattern of one clause, its translation). Clauses are separated by "; " in a note.
_CLAUSES: list[tuple[re.Pattern, Callable[[_M], str]]] = [
    (re.compile(r"item (\d+): (.+)"),
     lambda m: _("item %(n)s: %(problem)s") % {"n": m[1], "problem": translate_clause(m[2])}),
    (re.compile(r"no scheduled step has (.+)"),
     lambda m: _("no scheduled step has %(named)s") % {"named": _named(m[1])}),
    (re.compile(r"(.+) names (\d+) steps; link the PPS by hand"),
     lambda m: _("%(named)s names %(n)s steps: link the PPS by hand")
     % {"named": _named(m[1]), "n": m[2]}),
    (re.compile(r"(.+) belongs to accession (\S+), not (\S+)"),
     lambda m: _("%(named)s belongs to accession number %(ours)s, not %(theirs)s")
     % {"named": _named(m[1]), "ours": m[2], "theirs": m[3]}),
    (re.compile(r"(.+) belongs to requested procedure (\S+), not (\S+)"),
     lambda m: _("%(named)s belongs to requested procedure %(ours)s, not %(theirs)s")
     % {"named": _named(m[1]), "ours": m[2], "theirs": m[3]}),
    (re.compile(r"(.+) is for patient (\S+), the modality sent (\S+)"),
     lambda m: _("%(named)s is for patient %(ours)s; the modality sent %(theirs)s")
     % {"named": _named(m[1]), "ours": m[2], "theirs": m[3]}),
    (re.compile(r"step (\S+) is (.+) and cannot become (.+)"),
     lambda m: _("exam %(sps)s is %(current)s and cannot become %(target)s")
     % {"sps": m[1], "current": _status(m[2]), "target": _status(m[3])}),
    (re.compile(r"step (\S+) is CANCELED"),
     lambda m: _("exam %(sps)s is cancelled") % {"sps": m[1]}),
    (re.compile(r"linked to (.+) by (\S+)"),
     lambda m: _("linked to %(steps)s by %(who)s") % {"steps": m[1], "who": m[2]}),
    (re.compile(r"dismissed by (\S+): (.*)"),
     lambda m: _("dismissed by %(who)s: %(reason)s") % {"who": m[1], "reason": m[2]}),
    (re.compile(r"matched by Study Instance UID"), lambda m: _("matched by Study Instance UID")),
    (re.compile(r"matched by Accession Number"), lambda m: _("matched by accession number")),
    (re.compile(r"matched by Patient ID, modality and day"),
     lambda m: _("matched by patient ID, modality and day")),
    (re.compile(r"no order with this Study Instance UID or Accession Number, and no step of "
                r"patient (.+) for (.+) today"),
     lambda m: _("no order has this Study Instance UID or accession number, and patient "
                 "%(patient)s has no %(modality)s exam today")
     % {"patient": m[1], "modality": "" if m[2] == "this modality" else m[2]}),
    (re.compile(r"no order with this Study Instance UID or Accession Number"),
     lambda m: _("no order has this Study Instance UID or accession number")),
    (re.compile(r"patient (\S+) has (\d+) (\S*) steps today \((.*)\): ambiguous, link the "
                r"study by hand"),
     lambda m: _("patient %(patient)s has %(n)s %(modality)s exams today (%(ids)s): link the "
                 "study by hand") % {"patient": m[1], "n": m[2], "modality": m[3], "ids": m[4]}),
    (re.compile(r"MPPS (\S+) from (\S+): discontinued, (.*) \((\S+), (\S*)\)"),
     lambda m: _("MPPS %(pps)s from %(ae)s: discontinued, %(meaning)s (%(code)s)")
     % {"pps": m[1], "ae": m[2], "code": m[4],
        "meaning": _("no meaning given") if m[3] == "no meaning given" else m[3]}),
    (re.compile(r"MPPS (\S+) from (\S+)"),
     lambda m: _("MPPS %(pps)s from %(ae)s") % {"pps": m[1], "ae": m[2]}),
    (re.compile(r"images received: first instance (.+)"),
     lambda m: _("images received: first instance %(source)s") % {"source": m[1]}),
    (re.compile(r"study stable: no new instance for (\d+) s \((.*)\)"),
     lambda m: _("study complete: no new image for %(seconds)s s (%(images)s)")
     % {"seconds": m[1], "images": m[2]}),
    # refusals of mpps.services when staff link or dismiss a performed step
    (re.compile(r"order (\S+) has no scheduled step this PPS can be linked to"),
     lambda m: _("order %(accession)s has no exam this performed step can be linked to")
     % {"accession": m[1]}),
    (re.compile(r"PPS (\S+) is already linked to these steps"),
     lambda m: _("performed step %(pps)s is already linked to these exams") % {"pps": m[1]}),
    (re.compile(r"choose at least one scheduled step to link the PPS to"),
     lambda m: _("choose at least one exam to link the performed step to")),
    (re.compile(r"PPS (\S+) is not an exception"),
     lambda m: _("performed step %(pps)s is not an exception") % {"pps": m[1]}),
    (re.compile(r"say why this PPS belongs to no order"),
     lambda m: _("say why this performed step belongs to no order")),
    (re.compile(r"UPS claimed"), lambda m: _("claimed through UPS")),
    (re.compile(r"UPS (\S+)"), lambda m: _("UPS %(state)s") % {"state": m[1]}),
    (re.compile(r"HL7 SC (\S+)"), lambda m: _("HL7 status update %(status)s") % {"status": m[1]}),
    (re.compile(r"undo"), lambda m: _("undone")),
]


def translate_clause(text: str) -> str:
    for pattern, say in _CLAUSES:
        match = pattern.fullmatch(text.strip())
        if match is not None:
            return say(match)
    return text


def translate_note(note: str) -> str:
    """A note of ris's, clause by clause, in the active language (English: as written)."""
    if not note or (get_language() or "en").startswith("en"):
        return note or ""
    # "; " joins clauses, except inside the one clause that itself contains it.
    note = note.replace("; link the PPS by hand", "\0 link the PPS by hand")
    clauses = [c.replace("\0", ";") for c in note.split("; ")]
    return "；".join(translate_clause(clause) for clause in clauses)
