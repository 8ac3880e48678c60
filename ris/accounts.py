"""A user's own settings (their UI language, the board's modality), kept on the account rather
than in a cookie.

The language a person chose follows them to every workstation and browser; the session holds a
copy (``SESSION_KEY``) so that applying it costs no query per request
(``ris.middleware.UserLanguageMiddleware``). Login copies the stored choice into the new session.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction

from ris.models import UserPreference

#: Session key of the user's language ("" when they follow the department's default).
SESSION_KEY = "ris_user_language"


def supported_language(code: str) -> str:
    """``code`` if the UI offers it (``zh-hans``, ``en``), else "" (the department default)."""
    code = (code or "").lower()
    return code if code in {lang for lang, _name in settings.LANGUAGES} else ""


def user_language(user) -> str:
    """The language the user chose, "" for the department's default."""
    if not getattr(user, "is_authenticated", False):
        return ""
    preference = UserPreference.objects.filter(user=user).only("language").first()
    return preference.language if preference is not None else ""


@transaction.atomic
def user_language_set(*, user, language: str, session=None) -> str:
    """Store the user's UI language (an unsupported code means the department's default) and
    copy it into their current ``session``; returns what was stored."""
    language = supported_language(language)
    UserPreference.objects.update_or_create(user=user, defaults={"language": language})
    if session is not None:
        session[SESSION_KEY] = language
    return language


def board_modality(user) -> str:
    """The modality the user's board showed last, or ""."""
    if not getattr(user, "is_authenticated", False):
        return ""
    return (
        UserPreference.objects.filter(user=user).values_list("board_modality", flat=True).first()
        or ""
    )


def board_modality_set(*, user, modality: str) -> None:
    """Remember the modality the user's board shows (it follows them to another workstation,
    unlike a cookie). The board calls it only when the choice changed: one UPDATE, or an INSERT
    for a user without preferences yet. Not audited: it changes no record of the department."""
    if not getattr(user, "is_authenticated", False):
        return
    modality = modality[:16]
    if UserPreference.objects.filter(user=user).update(board_modality=modality):
        return
    try:
        with transaction.atomic():
            UserPreference.objects.get_or_create(user=user, defaults={"board_modality": modality})
    except IntegrityError:  # another request of the same user created it meanwhile
        UserPreference.objects.filter(user=user).update(board_modality=modality)


def copy_language_into_session(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: the new session speaks the user's language from its first
    page (connected in ``ris.apps``)."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = user_language(user)

