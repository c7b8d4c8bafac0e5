"""Budget alerts: the lead and finance hear once when a department passes 80% and once at 100%
of its monthly budget, every month."""

from decimal import Decimal

import pytest
from django.core import mail

from org.models import PlatformGroup
from reports.alerts import budget_alerts_send
from reports.models import BudgetAlert
from tests.factories import make_user
from tests.reports.conftest import at, meter

pytestmark = pytest.mark.django_db


@pytest.fixture
def budgeted(marketing, copy_assistant, marketing_lead):
    marketing.monthly_budget = Decimal("10.00")
    marketing.save()
    make_user(email="controller@example.com", platform_group=PlatformGroup.FINANCE)
    return marketing


def spend(copy_assistant, marketing, dollars: int, day: str) -> None:
    # $2 per million input tokens.
    meter(copy_assistant, marketing, when=at(day, 9), input_tokens=dollars * 500_000)


def test_crossing_80_percent_emails_the_lead_and_finance_once(budgeted, copy_assistant):
    spend(copy_assistant, budgeted, 7, "2026-03-02")
    assert budget_alerts_send(now=at("2026-03-02", 10)) == []
    assert mail.outbox == []

    spend(copy_assistant, budgeted, 1, "2026-03-03")
    sent = budget_alerts_send(now=at("2026-03-03", 10))
    budget_alerts_send(now=at("2026-03-03", 11))

    assert [alert.threshold for alert in sent] == [80]
    [email] = mail.outbox
    assert email.subject == "Marketing has used 80% of its Azure OpenAI budget for March 2026"
    assert sorted(email.to) == ["controller@example.com", "lead@example.com"]
    assert "$8.00 of its $10.00 monthly budget" in email.body


def test_reaching_100_percent_sends_the_second_alert_and_a_new_month_starts_over(budgeted, copy_assistant):
    spend(copy_assistant, budgeted, 8, "2026-03-02")
    budget_alerts_send(now=at("2026-03-02", 10))
    spend(copy_assistant, budgeted, 2, "2026-03-04")

    budget_alerts_send(now=at("2026-03-04", 10))
    budget_alerts_send(now=at("2026-03-05", 10))

    assert [email.subject for email in mail.outbox] == [
        "Marketing has used 80% of its Azure OpenAI budget for March 2026",
        "Marketing has used its whole Azure OpenAI budget for March 2026",
    ]
    assert "The chat is paused" in mail.outbox[1].body
    spend(copy_assistant, budgeted, 9, "2026-04-02")
    budget_alerts_send(now=at("2026-04-02", 10))
    assert mail.outbox[-1].subject == "Marketing has used 80% of its Azure OpenAI budget for April 2026"
    assert BudgetAlert.objects.count() == 3


def test_a_jump_past_both_thresholds_sends_one_email(budgeted, copy_assistant):
    spend(copy_assistant, budgeted, 12, "2026-03-02")

    sent = budget_alerts_send(now=at("2026-03-02", 10))

    assert sorted(alert.threshold for alert in sent) == [80, 100]
    [email] = mail.outbox
    assert email.subject == "Marketing has used its whole Azure OpenAI budget for March 2026"
    budget_alerts_send(now=at("2026-03-03", 10))
    assert len(mail.outbox) == 1


def test_a_department_name_with_a_line_break_still_gets_its_alert_on_one_line(budgeted, copy_assistant):
    # Names from before they were checked (or from a directory sync) may hold a line break;
    # in a subject it would be an invalid header and the alert would never go out.
    budgeted.name = "Marketing\r\nBcc: everyone@example.com"
    budgeted.save()
    spend(copy_assistant, budgeted, 8, "2026-03-02")

    budget_alerts_send(now=at("2026-03-02", 10))

    [email] = mail.outbox
    assert email.subject == (
        "Marketing Bcc: everyone@example.com has used 80% of its Azure OpenAI budget for March 2026"
    )
    assert "everyone@example.com" not in email.recipients()
