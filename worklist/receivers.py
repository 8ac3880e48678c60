"""Receivers of the worklist app, connected in ``WorklistConfig.ready``.

- ``post_save`` of Patient -> ``keep_name_keys``: the patient's search keys follow its name.
"""

from __future__ import annotations

from worklist import pn
from worklist.models import Patient, PatientNameKey


def name_keys_for(patient: Patient) -> set[str]:
    return pn.search_keys(patient.person_name)


def keep_name_keys(sender, instance: Patient, created: bool, update_fields=None, **kwargs) -> None:
    """Replace the keys that changed (none, mostly: HL7 repeats the name ris has)."""
    names = {"name_alphabetic", "name_ideographic", "name_phonetic"}
    if update_fields is not None and not names & set(update_fields):
        return
    wanted = name_keys_for(instance)
    have = set() if created else set(
        PatientNameKey.objects.filter(patient=instance).values_list("key", flat=True)
    )
    if have - wanted:
        PatientNameKey.objects.filter(patient=instance, key__in=have - wanted).delete()
    if wanted - have:
        PatientNameKey.objects.bulk_create(
            [PatientNameKey(patient=instance, key=key) for key in sorted(wanted - have)]
        )
