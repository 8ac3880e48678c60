"""Who may call what: the roles of ``ris.roles`` applied to API actions.

Reading needs any ris role (an account without a role sees nothing: a new user is not a reader
by accident). Each write action names the roles it needs; admins hold every role.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from ris.roles import ADMIN, ANY_ROLE, CHECK_IN, FRONT_DESK, TECHNOLOGIST, Role, has_role

#: The API's name for the check-in roles (the same tuple as the web UI's).
DESK_OR_TECHNOLOGIST = CHECK_IN
__all__ = ["ADMIN", "ANY_ROLE", "DESK_OR_TECHNOLOGIST", "FRONT_DESK", "TECHNOLOGIST"]


class HasRole(BasePermission):
    """Grant a request when the user holds a role the view requires for this action.

    A view sets ``read_roles`` (safe methods), ``write_roles`` (other methods) and optionally
    ``action_roles`` (``{"check_in": (...)}``) for actions whose roles differ from the default.
    """

    message = "Your role does not allow this action."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            return False
        return has_role(user, *required_roles(request, view))


def required_roles(request, view) -> tuple[Role, ...]:
    action = getattr(view, "action", None)
    per_action = getattr(view, "action_roles", {})
    if action in per_action:
        return tuple(per_action[action])
    if request.method in SAFE_METHODS:
        return tuple(getattr(view, "read_roles", ANY_ROLE))
    return tuple(getattr(view, "write_roles", ADMIN))
