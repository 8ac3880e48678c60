"""The language switch: a logged-in user's choice is stored on their account, not only in the
browser's cookie, so it follows them to every workstation (ris.accounts)."""

from __future__ import annotations

from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from ris import accounts


@require_POST
def set_language(request):
    """Django's set_language (cookie, safe redirect to ``next``), plus the account for users.

    The login page posts here too, before anyone is logged in: then only the cookie is set.
    """
    response = django_set_language(request)
    if request.user.is_authenticated:
        accounts.user_language_set(
            user=request.user, language=request.POST.get("language", ""), session=request.session
        )
    return response
