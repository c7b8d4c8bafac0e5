"""`manage.py create_api_key` (a fixed point the demo and scripts rely on): the new key on the last
line of its output, a clear error and no key for anything it cannot do."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from approvals.models import DeploymentRequest
from audit.models import AuditEvent
from gateway.models import ApiKey
from gateway.secrets import key_hash

pytestmark = pytest.mark.django_db


def run(*arguments: str) -> tuple[list[str], str]:
    """The command's output lines (what it says, then what it prints) and what it prints alone."""
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", *arguments, stdout=out, stderr=err)
    return (err.getvalue() + out.getvalue()).splitlines(), out.getvalue()


def test_it_prints_the_new_key_on_its_last_line(marketing, company_assistant):
    lines, printed = run(
        "--department", "marketing", "--name", "Website widget", "--deployment", "company-assistant"
    )

    raw = lines[-1]
    assert re.fullmatch(r"sy-[A-Za-z0-9_-]{40}", raw)
    assert printed == raw + "\n"  # alone on standard output: KEY=$(manage.py create_api_key ...)
    key = ApiKey.objects.get(secret_hash=key_hash(raw))
    assert (key.department, key.name, key.status()) == (marketing, "Website widget", "active")
    assert list(key.deployments.all()) == [company_assistant]
    assert key.expires_at.date() > key.created_at.date()
    assert f"Created “Website widget” for Marketing ({key.prefix}…), calling company-assistant" in lines[0]
    event = AuditEvent.objects.get(verb="api_key.created")
    assert event.actor is None
    assert raw not in str(event.after)


def test_it_takes_several_deployments_limits_and_a_lifetime(marketing, company_assistant, copywriter):
    lines, _ = run(
        "--department", "marketing", "--name", "Batch", "--deployment", "company-assistant",
        "--deployment", copywriter.gateway_name, "--days", "30", "--rpm", "10", "--tpm", "5000",
    )  # fmt: skip
    key = ApiKey.objects.get(secret_hash=key_hash(lines[-1]))
    assert set(key.deployments.all()) == {company_assistant, copywriter}
    assert (key.requests_per_minute, key.tokens_per_minute) == (10, 5000)
    assert (key.expires_at - key.created_at).days == 30


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--department", "nope"], "No department 'nope'. Departments: central-it, finance, marketing."),
        (["--deployment", "nowhere"], "No deployment with the gateway name 'nowhere'."),
        (["--days", "400"], "expires_in_days: A key lasts from 1 to 365 days."),
        (["--deployment", "ledger-analyst"], "Ledger analyst is not a deployment Marketing may use"),
        (["--name", ""], "name: Name the key after the application that uses it."),
    ],
)
def test_it_says_why_it_made_no_key(marketing, company_assistant, ledger, arguments, message):
    values = {
        "--department": "marketing",
        "--name": "Widget",
        "--deployment": "company-assistant",
        "--days": "90",
    }
    values.update(dict(zip(arguments[::2], arguments[1::2], strict=True)))
    with pytest.raises(CommandError, match=re.escape(message)):
        run(*[part for pair in values.items() for part in pair])
    assert not ApiKey.objects.exists()


def test_a_key_for_restricted_data_from_the_command_line_waits_for_approval(marketing, contracts):
    with pytest.raises(CommandError, match="say what the application does with the data"):
        run("--department", "marketing", "--name", "Contracts", "--deployment", contracts.gateway_name)

    lines, _ = run(
        "--department", "marketing", "--name", "Contracts", "--deployment", contracts.gateway_name,
        "--purpose", "Summaries of signed contracts.",
    )  # fmt: skip
    key = ApiKey.objects.get(secret_hash=key_hash(lines[-1]))
    assert key.status() == "pending"
    assert "It works once approved (restricted data)." in lines[0]
    request = DeploymentRequest.objects.get(api_key=key)
    assert request.state == DeploymentRequest.State.SUBMITTED
    assert request.requester is None
