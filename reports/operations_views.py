"""The operations page (platform admins): each deployment's health over the last hour, day or
week, how much of each provisioned deployment's throughput is used, adoption per department, and
the Microsoft Graph sync's state. Reading it changes nothing and is not audited."""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from org.access import require_platform_admin
from org.models import User
from reports.selectors.operations import (
    ADOPTION_DAYS,
    DEFAULT_WINDOW,
    PTU_FULL_FROM,
    PTU_IDLE_BELOW,
    PTU_SATURATED_MINUTES,
    WINDOWS,
    department_adoption,
    directory_sync_state,
    estate_health,
    window_for,
)


class WindowForm(forms.Form):
    window = forms.ChoiceField(
        choices=[(name, label) for name, (label, _) in WINDOWS.items()],
        required=False,
        error_messages={"invalid_choice": "Choose the last hour, the last 24 hours or the last 7 days."},
    )

    def chosen(self) -> str:
        return self.cleaned_data["window"] or DEFAULT_WINDOW


@require_safe
def operations(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    require_platform_admin(user)
    form = WindowForm(request.GET)
    windows = [(name, label) for name, (label, _) in WINDOWS.items()]
    if not form.is_valid():
        context = {"form": form, "windows": windows, "chosen": None}
        return render(request, "operations/page.html", context, status=400)
    now = timezone.now()
    window = window_for(form.chosen(), now=now)
    context = {
        "form": form,
        "windows": windows,
        "chosen": window.name,
        "health": estate_health(window),
        "adoption": department_adoption(now=now),
        "adoption_days": ADOPTION_DAYS,
        "sync": directory_sync_state(now=now),
        "idle_below": PTU_IDLE_BELOW,
        "full_from": PTU_FULL_FROM,
        "saturated_minutes": PTU_SATURATED_MINUTES,
    }
    return render(request, "operations/page.html", context)
