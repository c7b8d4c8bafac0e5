"""The profile page where a person makes, lists and revokes their personal access tokens for the
automation API.

A new token's secret goes out in the answer to the form that made it and nowhere else (never the
session, a URL or a log), and that answer tells browsers not to keep it. A form posted twice (a
double click, a reload of that answer) makes one token: each form carries a one-time value that
the session maps to the token it made, as the API key form does."""

import secrets

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from api.forms import AccessTokenForm
from api.models import AccessToken
from api.tokens import AccessTokenInvalid, AccessTokenRefused, access_token_create, access_token_revoke
from org.models import User

# What the session remembers of the tokens its forms made: one-time value -> token id, the latest few.
MADE_SESSION_KEY = "api_tokens_made"
MADE_REMEMBERED = 10
ONCE_LENGTH = 64


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    once = request.POST.get("once", "") if request.method == "POST" else ""
    once = once if 0 < len(once) <= ONCE_LENGTH else ""
    made = _made_with(request, user, once)
    if made is not None:
        messages.info(
            request,
            f"The token “{made.name}” ({made.prefix}…) was made with this form already; it is shown only "
            "once. Revoke it and make a new one if it was not copied.",
        )
        return redirect("api:token_list")
    form = AccessTokenForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = access_token_create(
                user=user,
                name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"],
                actor=user,
            )
        except AccessTokenInvalid as invalid:
            form.add_rule_errors(invalid.errors)
        except AccessTokenRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            _remember_made(request, once, token)
            response = render(
                request,
                "api/token_created.html",
                {"token": token, "raw_token": raw, "api_url": request.build_absolute_uri("/api/v1/")},
            )
            add_never_cache_headers(response)  # no-store: the back button must not bring it back
            return response
    now = timezone.now()
    tokens = list(user.access_tokens.all())
    context = {
        "form": form,
        "once": once or secrets.token_urlsafe(24),
        "live": [t for t in tokens if t.status(now) == "active"],
        "ended": [t for t in tokens if t.status(now) != "active"],
    }
    return render(request, "api/tokens.html", context, status=400 if form.errors else 200)


def _made_with(request: HttpRequest, user: User, once: str) -> AccessToken | None:
    made: dict[str, int] = request.session.get(MADE_SESSION_KEY, {})
    if not once or once not in made:
        return None
    return AccessToken.objects.filter(pk=made[once], user=user).first()


def _remember_made(request: HttpRequest, once: str, token: AccessToken) -> None:
    if not once:
        return
    made: dict[str, int] = dict(request.session.get(MADE_SESSION_KEY, {}))
    made[once] = token.pk
    request.session[MADE_SESSION_KEY] = dict(list(made.items())[-MADE_REMEMBERED:])


def _own_token(user: User, pk: int) -> AccessToken:
    """Someone else's token is a 404, as if it did not exist."""
    token = AccessToken.objects.filter(pk=pk, user=user).first()
    if token is None:
        raise Http404("No such token.")
    return token


@require_http_methods(["GET", "POST"])
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    token = _own_token(user, pk)
    if request.method == "POST":
        try:
            access_token_revoke(token=token, actor=user)
        except AccessTokenRefused as refusal:
            messages.error(request, str(refusal))
        else:
            messages.success(
                request,
                f"The token “{token.name}” ({token.prefix}…) is revoked: calls with it are refused now.",
            )
        return redirect("api:token_list")
    return render(request, "api/token_revoke.html", {"token": token})
