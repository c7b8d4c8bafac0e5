from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from org.models import PlatformGroup

# Apps whose models platform admins manage in Django admin.
ADMIN_MANAGED_APPS = [
    "org",
    "audit",
    "approvals",
    "provisioning",
    "chat",
    "gateway",
    "reports",
    "api",
    "auth",
    "account",
    "socialaccount",
]


def ensure_platform_groups() -> None:
    """Create the platform groups and give them their Django-admin permissions.

    Platform admins may change everything Switchyard keeps; finance approvers may only look;
    security approvers read the audit trail on its own page and get no Django-admin rights.
    Run after every migrate, so permissions of new models reach the groups at once.
    """
    managed = Permission.objects.filter(content_type__app_label__in=ADMIN_MANAGED_APPS)
    admins, _ = Group.objects.get_or_create(name=PlatformGroup.ADMINS.value)
    admins.permissions.set(managed)
    finance, _ = Group.objects.get_or_create(name=PlatformGroup.FINANCE.value)
    finance.permissions.set(managed.filter(Q(codename__startswith="view_")))
    Group.objects.get_or_create(name=PlatformGroup.SECURITY.value)
