"""Writes of configuration objects (devices, the procedure catalogue, HL7 and PACS destinations).

Configuration is the named exception of rule 2 in docs/architecture.md: admin-only screens (the
REST API's configuration endpoints, the Django admin) write these rows themselves, but always
through these two functions, so that every change lands in the audit trail with its before and
after values, in the transaction of the change.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import models, transaction

from worklist import audit
from worklist.audit import Actor


def _kind(model: type[models.Model]) -> str:
    return model._meta.model_name


@transaction.atomic
def configuration_save(
    *,
    actor: Actor,
    model: type[models.Model],
    pk: object | None,
    write: Callable[[], models.Model],
) -> models.Model:
    """Run ``write`` (a form's or serializer's save) for the object ``pk`` of ``model`` (None
    for a new one) and audit it; the before values are read from the database, not from the
    object the form already changed in memory."""
    before = audit.snapshot(model.objects.get(pk=pk)) if pk is not None else None
    obj = write()
    action = "update" if before is not None else "create"
    audit.record(actor, f"{_kind(model)}.{action}", obj, before=before, after=audit.snapshot(obj))
    return obj


@transaction.atomic
def configuration_delete(*, actor: Actor, obj: models.Model) -> None:
    """Delete a configuration object, keeping its last values in the audit trail."""
    audit.record(actor, f"{_kind(type(obj))}.delete", obj, before=audit.snapshot(obj))
    obj.delete()
