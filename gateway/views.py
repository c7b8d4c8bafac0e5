"""The key pages under a department: create a key (its secret shown once), rotate it, revoke it.
The department page lists the keys (`gateway.overview`); these pages change them.

A new key's secret goes out in the answer to the form that made it and nowhere else: it is never
put in the session, a URL or a log, and the answer tells browsers not to keep it. A form posted
twice (a double click, a reload of that answer) makes one key: each form carries a one-time token
that the session maps to the key it made."""

import secrets
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from gateway.access import get_department_for_keys, get_key_for
from gateway.forms import ApiKeyForm, RotateForm
from gateway.keys import ApiKeyInvalid, ApiKeyRefused, api_key_create, api_key_revoke, api_key_rotate
from gateway.models import STATUS_LABELS, ApiKey
from org.access import get_department_for
from org.models import Department, User

# What the session remembers of the keys its forms made: one-time token -> key id, the latest few.
MADE_SESSION_KEY = "gateway_keys_made"
MADE_REMEMBERED = 10
ONCE_LENGTH = 64


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _keys_section(department: Department) -> str:
    return reverse("department_detail", args=[department.slug]) + "#api-keys"


@require_http_methods(["GET"])
def key_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The keys are listed on the department page, for whoever may open it (finance too)."""
    return redirect(_keys_section(get_department_for(_user(request), slug, lead_only=True)))


@require_http_methods(["GET", "POST"])
def key_new(request: HttpRequest, slug: str) -> HttpResponse:
    user = _user(request)
    department = get_department_for_keys(user, slug)
    if request.method != "POST":
        form = ApiKeyForm(department=department)
        return _render_form(request, form, once=secrets.token_urlsafe(24))
    once = request.POST.get("once", "")
    once = once if 0 < len(once) <= ONCE_LENGTH else ""
    made = _made_with(request, once)
    if made is not None:
        messages.info(
            request,
            f"The key “{made.name}” ({made.prefix}…) was made with this form already; its secret is "
            "shown only once. Rotate it if it was not copied.",
        )
        return redirect(_keys_section(department))
    form = ApiKeyForm(request.POST, department=department)
    if form.is_valid():
        values = form.cleaned_data
        try:
            key, raw = api_key_create(
                department=department,
                name=values["name"],
                deployments=form.chosen_deployments(),
                requests_per_minute=values["requests_per_minute"],
                tokens_per_minute=values["tokens_per_minute"],
                expires_in_days=values["expires_in_days"],
                purpose=values["purpose"],
                actor=user,
            )
        except ApiKeyInvalid as invalid:
            form.add_rule_errors(invalid.errors)
        except ApiKeyRefused as refusal:
            form.add_error(None, str(refusal))
        else:
            _remember_made(request, once, key)
            return _show_once(request, key, raw)
    return _render_form(request, form, once=once or secrets.token_urlsafe(24))


def _render_form(request: HttpRequest, form: ApiKeyForm, *, once: str) -> HttpResponse:
    status = 400 if form.is_bound and form.errors else 200
    return render(
        request,
        "gateway/key_form.html",
        {"department": form.department, "form": form, "once": once},
        status=status,
    )


def _made_with(request: HttpRequest, once: str) -> ApiKey | None:
    made: dict[str, int] = request.session.get(MADE_SESSION_KEY, {})
    if not once or once not in made:
        return None
    return ApiKey.objects.filter(pk=made[once]).first()


def _remember_made(request: HttpRequest, once: str, key: ApiKey) -> None:
    if not once:
        return
    made: dict[str, int] = dict(request.session.get(MADE_SESSION_KEY, {}))
    made[once] = key.pk
    request.session[MADE_SESSION_KEY] = dict(list(made.items())[-MADE_REMEMBERED:])


def _show_once(
    request: HttpRequest, key: ApiKey, raw: str, *, replaced: ApiKey | None = None
) -> HttpResponse:
    """The page with the secret: the only time anyone sees it."""
    deployments = list(key.deployments.order_by("display_name"))
    context: dict[str, Any] = {
        "department": key.department,
        "key": key,
        "raw_key": raw,
        "replaced": replaced,
        "deployments": deployments,
        "example_model": deployments[0].gateway_name if deployments else "",
        "gateway_url": request.build_absolute_uri("/openai/v1"),
        "azure_endpoint": request.build_absolute_uri("/").rstrip("/"),
        "waits_for_approval": key.state == ApiKey.State.PENDING,
    }
    response = render(request, "gateway/key_created.html", context)
    add_never_cache_headers(response)  # no-store: the back button must not bring the key back
    return response


@require_http_methods(["GET", "POST"])
def key_rotate(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    user = _user(request)
    key = get_key_for(user, slug, pk)
    form = RotateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            successor, raw = api_key_rotate(key=key, grace_hours=form.cleaned_data["grace_hours"], actor=user)
        except ApiKeyRefused as refusal:
            messages.error(request, str(refusal))
            return redirect(_keys_section(key.department))
        key.refresh_from_db()
        return _show_once(request, successor, raw, replaced=key)
    status = key.status()
    context = {
        "department": key.department,
        "key": key,
        "form": form,
        "status_label": STATUS_LABELS[status],
        "rotatable": status == "active",
    }
    return render(request, "gateway/key_rotate.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def key_revoke(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    user = _user(request)
    key = get_key_for(user, slug, pk)
    if request.method == "POST":
        was_pending = key.state == ApiKey.State.PENDING and key.revoked_at is None
        try:
            api_key_revoke(key=key, actor=user)
        except ApiKeyRefused as refusal:
            messages.error(request, str(refusal))
        else:
            note = " Its approval request is withdrawn." if was_pending else ""
            messages.success(
                request,
                f"The key “{key.name}” ({key.prefix}…) is revoked: applications using it are refused "
                f"from now on.{note}",
            )
        return redirect(_keys_section(key.department))
    status = key.status()
    context = {
        "department": key.department,
        "key": key,
        "status_label": STATUS_LABELS[status],
        "revocable": key.revoked_at is None,
        "in_grace": status == "rotated",
    }
    return render(request, "gateway/key_revoke.html", context)
