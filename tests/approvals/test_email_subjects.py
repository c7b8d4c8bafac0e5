"""Names go into email subjects; a line break in one must not stop the email (an invalid
header) nor start a header of its own."""

import pytest
from django.core import mail

from tests.factories import make_request

pytestmark = pytest.mark.django_db


def test_a_request_whose_name_holds_a_line_break_is_announced_on_one_line(
    marketing, marketing_lead, zone, offers, policy, platform_admin, django_capture_on_commit_callbacks
):
    marketing.name = "Marketing\nBcc: everyone@example.com"
    marketing.save()

    with django_capture_on_commit_callbacks(execute=True):
        make_request(
            department=marketing,
            requester=marketing_lead,
            capacity=50,
            display_name="Copy\r\nassistant\x0b",
        )

    [waiting] = mail.outbox
    assert waiting.subject == (
        "[Switchyard] Waiting for your approval: Copy assistant (Marketing Bcc: everyone@example.com)"
    )
    assert waiting.to == [platform_admin.email]
