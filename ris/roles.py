"""Roles of ris users, as Django groups: one definition shared by the web UI and the REST API.

Front desk books and checks in; technologists run exams and reconcile performed steps;
radiologists read; admins configure devices, the catalogue and integrations. A superuser has
every role. Groups are created after each ``migrate`` (post_migrate), so a fresh database has them.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    FRONT_DESK = "front desk"
    TECHNOLOGIST = "technologist"
    RADIOLOGIST = "radiologist"
    ADMIN = "admin"


#: Who may do what, shared by the web UI (web.access) and the API
#: (api.permissions)
#: so that a page and its endpoint never disagree.
#: Anyone with a ris role: reading the schedule, orders, the board.
ANY_ROLE: tuple[Role, ...] = tuple(Role)
#: Booking, registering, editing and cancelling is front-desk work.
FRONT_DESK: tuple[Role, ...] = (Role.FRONT_DESK,)
#: Check-in and the arrival states are done at the desk and by the technologist at the room.
CHECK_IN: tuple[Role, ...] = (Role.FRONT_DESK, Role.TECHNOLOGIST)
#: Reconciling performed steps is the technologist's job.
TECHNOLOGIST: tuple[Role, ...] = (Role.TECHNOLOGIST,)
#: Catalogue, devices and integration pages.
ADMIN: tuple[Role, ...] = (Role.ADMIN,)


def user_roles(user) -> set[Role]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    if user.is_superuser:
        return set(Role)
    cached = getattr(user, "_ris_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True))
        cached = {role for role in Role if role.value in names}
        user._ris_roles = cached
    return cached


def has_role(user, *roles: Role) -> bool:
    """True when the user holds any of ``roles`` (admins hold every role)."""
    held = user_roles(user)
    return Role.ADMIN in held or bool(held.intersection(roles))


def ensure_groups(**kwargs) -> None:
    from django.contrib.auth.models import Group

    for role in Role:
        Group.objects.get_or_create(name=role.value)
