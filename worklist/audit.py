"""Who did it: the actor every service call carries, and the audit trail it writes."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import models

from worklist.models import AuditEvent
from worklist.signals import audit_recorded


@dataclass(frozen=True)
class Actor:
    type: str
    name: str
    user: Any = None

    @classmethod
    def system(cls, name: str = "ris") -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, name)

    @classmethod
    def for_user(cls, user) -> Actor:
        return cls(AuditEvent.ActorType.USER, user.get_username(), user)

    @classmethod
    def ae(cls, ae_title: str) -> Actor:
        return cls(AuditEvent.ActorType.AE, ae_title)

    @classmethod
    def hl7(cls, sender: str) -> Actor:
        return cls(AuditEvent.ActorType.HL7, sender)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    return value


def snapshot(obj: models.Model, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The concrete field values of ``obj`` as JSON-ready data, for before/after in the trail."""
    names = fields or [
        f.attname for f in obj._meta.concrete_fields if f.name not in ("created_at", "updated_at")
    ]
    return {name: _jsonable(getattr(obj, name)) for name in names}


def record(
    actor: Actor,
    action: str,
    obj: models.Model,
    *,
    before: dict | None = None,
    after: dict | None = None,
    detail: str = "",
) -> AuditEvent:
    audit_event = event(actor, action, obj, before=before, after=after, detail=detail)
    audit_event.save(force_insert=True)
    _announce([audit_event])
    return audit_event


def record_access(
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: str = "",
    detail: str = "",
    after: dict | None = None,
) -> AuditEvent:
    """An audit row for an access rather than a change (a login, a read of a patient record, a
    worklist query): what the security officer asks "who looked at this, who tried to get in".

    ``detail`` and ``after`` may name the patient (the trail is the place for that), but never
    the log: callers log ids only.
    """
    audit_event = access_event(actor, action, object_type=object_type, object_id=object_id,
                               detail=detail, after=after)
    audit_event.save(force_insert=True)
    _announce([audit_event])
    return audit_event


def access_event(
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: str = "",
    detail: str = "",
    after: dict | None = None,
) -> AuditEvent:
    """``record_access``'s row, not yet stored (for ``record_all``)."""
    return AuditEvent(
        actor_type=actor.type,
        actor=actor.name[:200],
        user=actor.user if getattr(actor.user, "pk", None) else None,
        action=action,
        object_type=object_type[:64],
        object_id=str(object_id)[:64],
        after=after,
        detail=detail,
    )


def record_all(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Store several ``event()``s with one INSERT: a service that changes many rows at once
    (a new order and its steps) still writes one AuditEvent per change."""
    stored = AuditEvent.objects.bulk_create(list(events))
    _announce(stored)
    return stored


def _announce(events: list[AuditEvent]) -> None:
    # No receiver unless connected (ris.apps: ATNA, which returns at once when it is off).
    if audit_recorded.receivers:
        audit_recorded.send(sender=AuditEvent, events=events)


def event(
    actor: Actor,
    action: str,
    obj: models.Model,
    *,
    before: dict | None = None,
    after: dict | None = None,
    detail: str = "",
) -> AuditEvent:
    """An audit row for ``obj`` (already saved), not yet stored: see ``record_all``."""
    return AuditEvent(
        actor_type=actor.type,
        actor=actor.name[:200],
        user=actor.user if getattr(actor.user, "pk", None) else None,
        action=action,
        object_type=obj._meta.label,
        object_id=str(obj.pk),
        before=before,
        after=after,
        detail=detail,
    )
