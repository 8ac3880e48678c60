"""Station routing: which station a step goes to when its catalogue entry names none.

A pure domain rule (``worklist.models.StationRule``, ``ModalityDefaultStation``), read by
``worklist.services`` when it creates a step, so every interface (HL7, web, API) routes alike.
The rules are read once and reused for a few seconds: an HL7 burst would otherwise read them
for every order. Edits in this process clear the cache at once; edits made in another process
(the admin) are seen within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db.models.signals import post_delete, post_save

from worklist.models import Device, ModalityDefaultStation, StationRule

CACHE_SECONDS = 5.0
_cache: list = []  # [(loaded at, rules, defaults)]


@dataclass(frozen=True)
class RoutingFacts:
    """What a rule may look at: the exam, the patient's visit, the order."""

    procedure_code: str = ""
    modality: str = ""
    patient_class: str = ""
    department: str = ""
    location: str = ""
    priority: str = ""


def forget(**_signal) -> None:
    _cache.clear()


for _model in (StationRule, ModalityDefaultStation, Device):
    post_save.connect(forget, sender=_model, dispatch_uid=f"routing-{_model.__name__}")
    post_delete.connect(forget, sender=_model, dispatch_uid=f"routing-{_model.__name__}")


def _rules() -> tuple[list[StationRule], dict[str, Device]]:
    now = time.monotonic()
    if _cache and now - _cache[0][0] < CACHE_SECONDS:
        return _cache[0][1], _cache[0][2]
    rules = list(
        StationRule.objects.filter(active=True, station__active=True).select_related("station")
    )
    defaults = {
        d.modality: d.station
        for d in ModalityDefaultStation.objects.filter(station__active=True).select_related(
            "station"
        )
    }
    _cache[:] = [(now, rules, defaults)]
    return rules, defaults


def _matches(rule: StationRule, facts: RoutingFacts) -> bool:
    def same(criterion: str, value: str) -> bool:
        return not criterion or criterion.strip().upper() == value.strip().upper()

    return (
        same(rule.procedure_code, facts.procedure_code)
        and same(rule.modality, facts.modality)
        and same(rule.patient_class, facts.patient_class)
        and same(rule.department, facts.department)
        and same(rule.priority, facts.priority)
        and (not rule.location
             or facts.location.strip().upper().startswith(rule.location.strip().upper()))
    )


def choose_station(facts: RoutingFacts) -> Device | None:
    """The first matching rule's station, else the modality's default, else None."""
    rules, defaults = _rules()
    for rule in rules:
        if _matches(rule, facts):
            return rule.station
    return defaults.get(facts.modality)
