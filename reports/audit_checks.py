"""The scheduled check of the audit trail: when its hash chain is broken, every platform admin
hears of it by email, once per break (the check runs hourly; the break stays until someone
investigates)."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q

from audit.verify import ChainReport, audit_chain_verify
from base.text import one_line
from org.models import PlatformGroup, User
from reports.models import AuditChainAlert


def audit_chain_check() -> ChainReport:
    """Walk the chain; on a break not reported before, email the platform admins and the security
    approvers."""
    report = audit_chain_verify()
    broken = report.broken
    if broken is None:
        return report
    recipients = sorted(
        User.objects.filter(
            Q(groups__name__in=[PlatformGroup.ADMINS.value, PlatformGroup.SECURITY.value])
            | Q(is_superuser=True),
            is_active=True,
        )
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )
    try:
        # Recorded and sent together: a mail server that is down leaves the break unreported, to
        # be sent by the next check.
        with transaction.atomic():
            AuditChainAlert.objects.create(
                sequence=broken.sequence or 0,
                kind=broken.kind,
                explanation=broken.explanation,
                recipients=recipients,
            )
            if recipients:
                send_mail(
                    one_line(f"[Switchyard] A{str(broken)[1:]}"),
                    _alert_body(report),
                    settings.DEFAULT_FROM_EMAIL,
                    recipients,
                )
    except IntegrityError:
        pass  # reported before
    return report


def _alert_body(report: ChainReport) -> str:
    return (
        f"The scheduled check of Switchyard's audit trail found a break in its hash chain:\n\n"
        f"    {report.broken}\n\n"
        "An audit event was changed, deleted or re-linked in the database, outside Switchyard. Events "
        "before that point are intact. Keep a copy of the database as it is now, then find out who "
        "had write access to it. Run `python manage.py audit_verify` to see the break again.\n\n"
        "You get this email once for this break; the check goes on every "
        f"{settings.AUDIT_VERIFY_EVERY_SECONDS / 60:g} minutes.\n"
    )
