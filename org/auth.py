"""Sign-in backends: Django's and allauth's, remembering the signed-in person between requests.

Django reads the signed-in person from the database on every request (the session holds only
the id). Here each web process remembers them (`base.remembered`) under a version per person,
which any save or delete of that person replaces, in every process: a changed password, a
deactivation or a new name take effect at the next request as before. The session is still
checked against the password on every request (Django's `get_user` does that with what this
returns), and each request gets its own copy, so nothing one request caches on it reaches
another.
"""

import copy
from typing import Any

from allauth.account import auth_backends as allauth_backends
from django.contrib.auth import backends as django_backends
from django.http import HttpRequest

from base.remembered import Remembered, current_version, version_changed
from org.models import User
from org.passwords import password_refusal

REMEMBER_SECONDS = 300
_people: Remembered[User] = Remembered(seconds=REMEMBER_SECONDS, size=10_000)


def _version_key(user_id: Any) -> str:
    return f"portal:person-version:{user_id}"


class RemembersPeople:
    def get_user(self, user_id: Any) -> User | None:
        version = current_version(_version_key(user_id))
        person = _people.get(user_id, version=version)
        if person is None:
            person = super().get_user(user_id)  # type: ignore[misc]
            if person is None:
                return None
            _people.set(user_id, person, version=version)
        return copy.copy(person)


class ObeysPasswordPolicy:
    """A right password is not enough for an account that signs in with Entra ID, nor, while
    Entra sign-in is on, for one that is not break-glass (org.passwords). Checked here,
    where every password sign-in (allauth's form, Django admin's, `Client.login`) ends up."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **credentials: Any) -> User | None:
        user: User | None = super().authenticate(request, *args, **credentials)  # type: ignore[misc]
        if user is not None and password_refusal(user):
            return None
        return user


class ModelBackend(ObeysPasswordPolicy, RemembersPeople, django_backends.ModelBackend):
    pass


class AuthenticationBackend(
    ObeysPasswordPolicy,
    RemembersPeople,
    allauth_backends.AuthenticationBackend,  # type: ignore[misc]
):
    pass


def person_changed(instance: User, **_signal: Any) -> None:
    """A receiver for saved and deleted people."""
    _people.forget(instance.pk)
    version_changed(_version_key(instance.pk))
