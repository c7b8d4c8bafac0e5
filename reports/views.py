"""Cost pages: the company-wide month (admins, finance), one department (its leads too), one
deployment, chargeback statements and reconciliation. Every table also downloads as CSV."""

from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from org.access import get_department_for, require_overview_role
from org.models import User
from provisioning.access import get_deployment_for
from reports import reconciliation as reconciliations
from reports.access import get_cost_center_for, named_departments_for
from reports.exports import report_csv, statement_csv
from reports.months import EARLIEST_MONTH, MonthInvalid, month_parse, month_start, next_month, previous_month
from reports.selectors.chargeback import chargeback_statement, cost_centers
from reports.selectors.department import department_report
from reports.selectors.deployment import deployment_report
from reports.selectors.overview import overview_report
from reports.tables import Report


@dataclass(frozen=True)
class MonthChoice:
    """The month asked for, or this month and why the one asked for cannot be shown."""

    month: date
    error: str = ""

    @property
    def status(self) -> int:
        return 400 if self.error else 200


def _month(value: str | None) -> MonthChoice:
    today = timezone.localdate()
    try:
        return MonthChoice(month_parse(value, today=today))
    except MonthInvalid as invalid:
        return MonthChoice(month_start(today), invalid.message)


def _month_context(choice: MonthChoice) -> dict[str, Any]:
    month = choice.month
    this_month = month_start(timezone.localdate())
    return {
        "month": month,
        "month_value": f"{month:%Y-%m}",
        "month_error": choice.error,
        "min_month": f"{EARLIEST_MONTH:%Y-%m}",
        "max_month": f"{this_month:%Y-%m}",
        "previous_month": f"{previous_month(month):%Y-%m}" if month > EARLIEST_MONTH else None,
        "next_month": f"{next_month(month):%Y-%m}" if month < this_month else None,
    }


def _bad_month(choice: MonthChoice) -> HttpResponse:
    """A CSV export asked for a month there is none for: the reason, as text."""
    return HttpResponseBadRequest(choice.error, content_type="text/plain; charset=utf-8")


def _page(
    request: HttpRequest,
    template: str,
    report: Report,
    *,
    choice: MonthChoice,
    export: str,
    export_args: list[Any],
    **extra: Any,
) -> HttpResponse:
    for table in report.tables.values():
        table.csv_url = reverse(export, args=[*export_args, table.name]) + f"?month={report.month:%Y-%m}"
    context = {"report": report, **_month_context(choice), **extra}
    return render(request, template, context, status=choice.status)


def overview(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    require_overview_role(user)
    choice = _month(request.GET.get("month"))
    report = overview_report(month=choice.month)
    return _page(
        request,
        "reports/overview.html",
        report,
        choice=choice,
        export="reports:overview_export",
        export_args=[],
    )


def overview_export(request: HttpRequest, table: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    require_overview_role(user)
    choice = _month(request.GET.get("month"))
    if choice.error:
        return _bad_month(choice)
    return report_csv(overview_report(month=choice.month, complete=True), table, prefix="costs")


def department(request: HttpRequest, slug: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    found = get_department_for(user, slug, lead_only=True)
    choice = _month(request.GET.get("month"))
    report = department_report(department=found, month=choice.month)
    return _page(
        request,
        "reports/department.html",
        report,
        choice=choice,
        export="reports:department_export",
        export_args=[found.slug],
        department=found,
    )


def department_export(request: HttpRequest, slug: str, table: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    found = get_department_for(user, slug, lead_only=True)
    choice = _month(request.GET.get("month"))
    if choice.error:
        return _bad_month(choice)
    report = department_report(department=found, month=choice.month)
    return report_csv(report, table, prefix=found.slug)


def deployment(request: HttpRequest, pk: int) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    found = get_deployment_for(user, pk)
    choice = _month(request.GET.get("month"))
    report = deployment_report(
        deployment=found, month=choice.month, named_departments=named_departments_for(user)
    )
    return _page(
        request,
        "reports/deployment.html",
        report,
        choice=choice,
        export="reports:deployment_export",
        export_args=[found.pk],
        deployment=found,
    )


def deployment_export(request: HttpRequest, pk: int, table: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    found = get_deployment_for(user, pk)
    choice = _month(request.GET.get("month"))
    if choice.error:
        return _bad_month(choice)
    report = deployment_report(
        deployment=found, month=choice.month, named_departments=named_departments_for(user)
    )
    return report_csv(report, table, prefix=f"deployment-{found.pk}")


def chargeback_index(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    require_overview_role(user)
    centers = cost_centers()
    if not centers:
        return redirect("reports:overview")
    # The month goes on as asked: the statement says next to its field if it cannot be shown.
    month = request.GET.get("month", "")
    query = f"?{urlencode({'month': month})}" if month else ""
    return redirect(reverse("reports:chargeback", args=[centers[0]]) + query)


def chargeback(request: HttpRequest, cost_center: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    get_cost_center_for(user, cost_center)
    choice = _month(request.GET.get("month"))
    report = chargeback_statement(cost_center=cost_center, month=choice.month)
    report.tables["lines"].csv_url = (
        reverse("reports:chargeback_export", args=[cost_center]) + f"?month={report.month:%Y-%m}"
    )
    return render(
        request,
        "reports/chargeback.html",
        {
            "report": report,
            **_month_context(choice),
            "cost_center": cost_center,
            "cost_centers": cost_centers(),
            "generated_at": timezone.now(),
        },
        status=choice.status,
    )


def chargeback_export(request: HttpRequest, cost_center: str) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    get_cost_center_for(user, cost_center)
    choice = _month(request.GET.get("month"))
    if choice.error:
        return _bad_month(choice)
    report = chargeback_statement(cost_center=cost_center, month=choice.month)
    return statement_csv(report, cost_center=cost_center)


def reconciliation(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    require_overview_role(user)
    return _reconciliation_page(request, _month(request.GET.get("month")))


def _reconciliation_page(request: HttpRequest, choice: MonthChoice) -> HttpResponse:
    lines = reconciliations.reconciliation_lines(month=choice.month)
    return render(
        request,
        "reports/reconciliation.html",
        {
            "lines": lines,
            "flagged": sum(1 for line in lines if line.flagged),
            "checked_at": max((line.checked_at for line in lines), default=None),
            **_month_context(choice),
        },
        status=choice.status,
    )


@require_POST
def reconciliation_run(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if not user.is_platform_admin:
        raise PermissionDenied("Only platform admins can ask Azure for billed costs.")
    choice = _month(request.POST.get("month"))
    if choice.error:
        return _reconciliation_page(request, choice)
    lines = reconciliations.reconciliation_run(month=choice.month)
    messages.success(
        request, f"Asked Azure Cost Management about {len(lines)} account{'s' if len(lines) != 1 else ''}."
    )
    return redirect(reverse("reports:reconciliation") + f"?month={choice.month:%Y-%m}")
