"""Budget alerts: the leads (and finance) hear when a department crosses 80% and 100% of its
monthly budget, from the same figures the cost pages show."""

from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from base.text import one_line
from money.allocation import cost_allocation
from money.amounts import cents
from money.periods import Period
from org.models import Department, Membership, PlatformGroup, User
from reports.models import BudgetAlert
from reports.months import month_start
from reports.tables import HUNDRED, percent

ALERT_THRESHOLDS = [80, 100]


def budget_alerts_send(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Email the leads (and finance) of every department that crossed 80% or 100% of its monthly
    budget, once per threshold and month. Safe to run twice: the unique alert row is the guard."""
    now = now or timezone.now()
    month = month_start(timezone.localdate(now))
    allocation = cost_allocation(period=Period.month(month, now=now))
    sent: list[BudgetAlert] = []
    finance = list(
        User.objects.filter(groups__name=PlatformGroup.FINANCE.value, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    already = set(BudgetAlert.objects.filter(month=month).values_list("department_id", "threshold"))
    for department in Department.objects.filter(monthly_budget__gt=0):
        spent = allocation.department_total(department.pk)
        crossed = [t for t in ALERT_THRESHOLDS if spent * HUNDRED >= department.monthly_budget * t]
        new = [t for t in crossed if (department.pk, t) not in already]
        if not new:
            continue
        leads = list(
            department.memberships.filter(role=Membership.Role.LEAD, user__is_active=True).values_list(
                "user__email", flat=True
            )
        )
        recipients = sorted(set(leads) | set(finance))
        created = []
        for threshold in new:
            try:
                with transaction.atomic():
                    created.append(
                        BudgetAlert.objects.create(
                            department=department,
                            month=month,
                            threshold=threshold,
                            spent=cents([spent])[1],
                            budget=department.monthly_budget,
                            recipients=recipients,
                        )
                    )
            except IntegrityError:
                continue  # another run sent it meanwhile
        if not created:
            continue
        # One email names the highest threshold crossed; a jump past both does not send two.
        alert = max(created, key=lambda alert: alert.threshold)
        if recipients:
            _budget_alert_email(alert=alert, department=department, recipients=recipients)
        sent.extend(created)
    return sent


def _budget_alert_email(*, alert: BudgetAlert, department: Department, recipients: list[str]) -> None:
    used = percent(alert.spent, alert.budget)
    if alert.threshold >= 100:
        subject = f"{department.name} has used its whole Azure OpenAI budget for {alert.month:%B %Y}"
        consequence = "The chat is paused for the department until the budget is raised or the month ends."
    else:
        subject = (
            f"{department.name} has used {alert.threshold}% of its Azure OpenAI budget "
            f"for {alert.month:%B %Y}"
        )
        consequence = "At 100% the chat pauses for the department until the budget is raised."
    body = (
        f"{department.name} (cost center {department.cost_center}) has spent ${alert.spent:,.2f} of its "
        f"${alert.budget:,.2f} monthly budget ({used}%).\n\n{consequence}\n\n"
        f"See where the money goes: "
        f"{settings.SITE_URL.rstrip('/')}{reverse('reports:department', args=[department.slug])}\n"
    )
    # A name with a line break would make the subject an invalid header and the alert unsent.
    send_mail(one_line(subject), body, settings.DEFAULT_FROM_EMAIL, recipients)
