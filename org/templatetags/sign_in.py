"""What the sign-in page offers: with Entra sign-in on, "Sign in with Microsoft" and, behind a
link, a password form for break-glass accounts; with it off, the password form. In development
(`make run`) both may be on, side by side, for the demo's password sign-ins."""

from dataclasses import dataclass
from typing import Any

from django import template
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import QueryDict
from django.urls import reverse

from org.passwords import entra_sign_in_on, passwords_beside_entra

register = template.Library()

BREAK_GLASS_MODE = "break-glass"


@dataclass(frozen=True)
class SignInChoices:
    break_glass_only: bool  # Entra sign-in is on: the password form is for break-glass accounts
    password_form: bool  # the password form is on the page
    break_glass_url: str = ""


@register.simple_tag(takes_context=True)
def sign_in_choices(context: template.Context) -> SignInChoices:
    if not entra_sign_in_on() or passwords_beside_entra():
        return SignInChoices(break_glass_only=False, password_form=True)
    request = context["request"]
    form: Any = context.get("form")
    # A submitted form (a refusal, a wrong password) stays on the page with its message.
    asked = request.GET.get("mode") == BREAK_GLASS_MODE or bool(form is not None and form.is_bound)
    query = QueryDict(mutable=True)
    query["mode"] = BREAK_GLASS_MODE
    if request.GET.get(REDIRECT_FIELD_NAME):
        query[REDIRECT_FIELD_NAME] = request.GET[REDIRECT_FIELD_NAME]
    url = f"{reverse('account_login')}?{query.urlencode(safe='/')}"
    return SignInChoices(break_glass_only=True, password_form=asked, break_glass_url=url)
