"""Request middleware of the ris project."""

from __future__ import annotations

from django.utils import translation

from ris.accounts import SESSION_KEY


class UserLanguageMiddleware:
    """Speak the language stored on the logged-in user's account (``ris.accounts``).

    Runs after Django's LocaleMiddleware (the department default ``RIS_LANGUAGE``, the language
    cookie of the login page) and the authentication middleware: a user's own choice wins over
    both. The session's copy is read, so this costs no query.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        language = session.get(SESSION_KEY, "") if session is not None else ""
        if language and request.user.is_authenticated:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)
