"""The scheduled check emails every platform admin and security approver when the audit trail's
chain breaks, once per break however often it runs, and nobody while the chain is intact."""

import pytest
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection

from audit.models import AuditEvent
from org.models import PlatformGroup
from reports.tasks import audit_chain_check_task
from tests.factories import make_user


def edit_note(sequence: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET note = 'edited' WHERE sequence = %s",  # noqa: S608
            [sequence],
        )


def test_the_check_runs_on_the_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["audit-verify"]
    assert entry == {
        "task": "reports.tasks.audit_chain_check_task",
        "schedule": settings.AUDIT_VERIFY_EVERY_SECONDS,
    }
    assert settings.AUDIT_VERIFY_EVERY_SECONDS == 3600


def test_an_intact_trail_emails_nobody(write_events, platform_admin, mailoutbox):
    write_events(5)

    assert audit_chain_check_task() is True

    assert mailoutbox == []


def test_a_break_is_emailed_to_every_platform_admin_and_security_approver_once(
    write_events, platform_admin, mailoutbox
):
    second_admin = make_user(email="second-admin@example.com", platform_group=PlatformGroup.ADMINS)
    security = make_user(email="security@example.com", platform_group=PlatformGroup.SECURITY)
    make_user(email="finance@example.com", platform_group=PlatformGroup.FINANCE)
    make_user(email="member@example.com")
    write_events(5)
    edit_note(3)

    assert audit_chain_check_task() is False

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == sorted([platform_admin.email, second_admin.email, security.email])
    assert mail.subject == (
        "[Switchyard] Audit trail broken at event 3: "
        "its content was changed after it was written: what it says no longer matches its hash"
    )
    assert "manage.py audit_verify" in mail.body

    # The next hours find the same break: no more mail.
    write_events(2)
    assert audit_chain_check_task() is False
    assert audit_chain_check_task() is False
    assert len(mailoutbox) == 1

    # A second edit further on changes nothing: the first break is still the one found.
    edit_note(6)
    assert audit_chain_check_task() is False
    assert len(mailoutbox) == 1


def test_a_different_break_is_emailed_again(write_events, platform_admin, mailoutbox):
    write_events(6)
    edit_note(5)
    audit_chain_check_task()
    # Someone edits an earlier event too: now that is the first break.
    edit_note(2)

    audit_chain_check_task()

    assert [mail.subject.split(":")[0] for mail in mailoutbox] == [
        "[Switchyard] Audit trail broken at event 5",
        "[Switchyard] Audit trail broken at event 2",
    ]


class MailServerDown(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("mail server down")


def test_a_break_whose_email_failed_is_sent_by_the_next_check(
    write_events, platform_admin, mailoutbox, settings
):
    write_events(3)
    edit_note(2)
    settings.EMAIL_BACKEND = f"{__name__}.MailServerDown"
    with pytest.raises(ConnectionRefusedError):
        audit_chain_check_task()

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    audit_chain_check_task()

    assert [mail.to for mail in mailoutbox] == [[platform_admin.email]]
