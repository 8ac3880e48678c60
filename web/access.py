"""Who may open which page: every view is wrapped in ``role_required``.

Anonymous users are sent to the login page; a logged-in user without one of the roles gets 403
(not a login redirect, which would loop for someone who is already logged in).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from ris.roles import ADMIN, ANY_ROLE, CHECK_IN, FRONT_DESK, TECHNOLOGIST, Role, has_role

__all__ = ["ADMIN", "ANY_ROLE", "CHECK_IN", "FRONT_DESK", "TECHNOLOGIST"]


def role_required(*roles: Role) -> Callable:
    """Allow the view to users holding any of ``roles`` (admins hold every role)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]
        return wrapper

    return decorator
