from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse

from audit.services import audit_record
from org.directory_sync import directory_sync, run_summary
from org.forms import AdminPasswordChangeForm, UserChangeForm
from org.models import Department, DirectorySyncRun, Membership, User
from org.passwords import entra_sign_in_on
from org.services import (
    account_active_change_record,
    department_policy_change,
    department_policy_values,
    lifecycle_record,
    membership_change_record,
    platform_roles_change_record,
)

# How an audit event names the superuser flag and Django admin access among the platform roles.
SUPERUSER = "Superuser"
ADMIN_SITE_ACCESS = "Django admin access"


def _department_values(department: Department) -> dict[str, object]:
    return {
        "name": department.name,
        "slug": department.slug,
        "cost_center": department.cost_center,
        **department_policy_values(department),
    }


def _person_values(user: User) -> dict[str, object]:
    return {"email": user.email, "name": user.get_full_name(), "is_active": user.is_active}


def _memberships_as_saved(memberships: list[Membership]) -> dict[int, Membership]:
    """The memberships as the database holds them before an admin's save changes them."""
    ids = [membership.pk for membership in memberships if membership.pk]
    return {m.pk: m for m in Membership.objects.filter(pk__in=ids).select_related("user", "department")}


def _membership_changes_record(*, actor: User, before: Membership | None, after: Membership | None) -> None:
    """Audit an admin's change of one membership (added, deleted, its role or even its person or
    department changed) as the person leaving or joining departments and changing roles."""
    if (
        before is not None
        and after is not None
        and (before.user_id != after.user_id or before.department_id != after.department_id)
    ):
        _membership_changes_record(actor=actor, before=before, after=None)
        before = None
    anyone = after or before
    assert anyone is not None
    membership_change_record(
        user=anyone.user,
        department=anyone.department,
        role_before=before.role if before else None,
        role_after=after.role if after else None,
        actor=actor,
    )


class AuditsMembershipInlines:
    """For an admin page with a membership inline: its additions, deletions and role changes
    go to the audit trail (the admin saves a page in one transaction, the events with it)."""

    def save_formset(
        self,
        request: HttpRequest,
        form: ModelForm[Any],
        formset: BaseInlineFormSet[Any, Any, Any],
        change: bool,
    ) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)  # type: ignore[misc]
            return
        before = _memberships_as_saved([inline.instance for inline in formset.forms])
        # Read first: a deleted membership has no id any more.
        doomed = [inline.instance.pk for inline in formset.deleted_forms if inline.instance.pk]
        super().save_formset(request, form, formset, change)  # type: ignore[misc]
        actor: User = request.user  # type: ignore[assignment]
        for pk in doomed:
            _membership_changes_record(actor=actor, before=before[pk], after=None)
        for membership in formset.new_objects:
            _membership_changes_record(actor=actor, before=None, after=membership)
        for membership, _fields in formset.changed_objects:
            _membership_changes_record(actor=actor, before=before[membership.pk], after=membership)


class MembershipInline(admin.TabularInline[Membership, Department]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "source", "created_at"]
    readonly_fields = ["created_at"]


class UserMembershipInline(admin.TabularInline[Membership, User]):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["department"]
    fields = ["department", "role", "source", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Department)
class DepartmentAdmin(AuditsMembershipInlines, admin.ModelAdmin[Department]):
    list_display = [
        "name",
        "cost_center",
        "monthly_budget",
        "member_count",
        "chat_retention_days",
        "approvers_may_audit_chats",
        "is_managed_by_entra",
    ]
    list_filter = ["approvers_may_audit_chats", "chat_retention_days"]
    search_fields = ["name", "slug", "cost_center", "entra_member_group_id", "entra_lead_group_id"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "cost_center", "monthly_budget"]}),
        ("Data policy", {"fields": ["chat_retention_days", "approvers_may_audit_chats"]}),
        ("Microsoft Entra ID", {"fields": ["entra_member_group_id", "entra_lead_group_id"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Department]:
        return super().get_queryset(request).annotate(member_count=Count("memberships"))

    def save_model(
        self, request: HttpRequest, obj: Department, form: ModelForm[Department], change: bool
    ) -> None:
        actor: User = request.user  # type: ignore[assignment]
        if not change:
            super().save_model(request, obj, form, change)
            lifecycle_record(
                verb="department.created", target=obj, actor=actor, values=_department_values(obj)
            )
            return
        # The budget and data policy change through their service (locked, audited), as through
        # the API; the form's other fields are saved as Django saves them.
        policy = department_policy_values(obj)
        obj.save(update_fields=[name for name in form.changed_data if name not in policy])
        department_policy_change(
            department=obj,
            actor=actor,
            monthly_budget=obj.monthly_budget,
            chat_retention_days=obj.chat_retention_days,
            approvers_may_audit_chats=obj.approvers_may_audit_chats,
        )

    def delete_model(self, request: HttpRequest, obj: Department) -> None:
        values, pk = _department_values(obj), obj.pk
        super().delete_model(request, obj)
        obj.pk = pk  # the trail names the department that was
        lifecycle_record(verb="department.deleted", target=obj, actor=request.user, values=values)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Department]) -> None:
        for department in queryset:
            self.delete_model(request, department)

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, department: Department) -> int:
        return int(department.member_count)  # type: ignore[attr-defined]

    @admin.display(description="Entra ID", boolean=True)
    def is_managed_by_entra(self, department: Department) -> bool:
        return department.is_managed_by_entra


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["user", "department", "role", "source", "created_at"]
    list_filter = ["role", "source", "department"]
    search_fields = ["user__email", "user__first_name", "user__last_name", "department__name"]
    autocomplete_fields = ["user", "department"]
    list_select_related = ["user", "department"]

    def save_model(
        self, request: HttpRequest, obj: Membership, form: ModelForm[Membership], change: bool
    ) -> None:
        before = _memberships_as_saved([obj]).get(obj.pk)
        super().save_model(request, obj, form, change)
        _membership_changes_record(actor=request.user, before=before, after=obj)  # type: ignore[arg-type]

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        before = _memberships_as_saved([obj])[obj.pk]
        super().delete_model(request, obj)
        _membership_changes_record(actor=request.user, before=before, after=None)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        for membership in queryset.select_related("user", "department"):
            self.delete_model(request, membership)


@admin.register(User)
class UserAdmin(AuditsMembershipInlines, DjangoUserAdmin[User]):
    form = UserChangeForm
    change_password_form = AdminPasswordChangeForm
    ordering = ["email"]
    list_display = [
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "is_break_glass",
        "is_active",
        "last_login",
    ]
    list_filter = [
        "is_staff",
        "is_superuser",
        "is_break_glass",
        "is_active",
        "groups",
        "memberships__department",
    ]
    search_fields = ["email", "first_name", "last_name"]
    inlines = [UserMembershipInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        (
            "Roles",
            {
                "fields": ("is_active", "is_staff", "is_superuser", "groups"),
                "description": "Platform admins and finance approvers are the groups of the same name.",
            },
        ),
        (
            "Sign-in",
            {
                "fields": ("is_break_glass",),
                "description": "While Microsoft Entra ID sign-in is on, only break-glass accounts "
                "sign in with a password.",
            },
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    readonly_fields = ["last_login", "date_joined"]

    def save_related(self, request: HttpRequest, form: ModelForm[User], formsets: Any, change: bool) -> None:
        # Platform roles are the person's groups, saved here after the person.
        user = form.instance
        before = set(user.groups.values_list("name", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        after = set(user.groups.values_list("name", flat=True))
        platform_roles_change_record(
            user=user,
            granted=after - before,
            removed=before - after,
            actor=request.user,  # type: ignore[arg-type]
        )

    def save_model(self, request: HttpRequest, obj: User, form: ModelForm[User], change: bool) -> None:
        super().save_model(request, obj, form, change)
        actor: User = request.user  # type: ignore[assignment]
        if not change:
            lifecycle_record(verb="user.created", target=obj, actor=actor, values=_person_values(obj))
        if change and "is_active" in form.changed_data:
            # The directory sync reads these: it gives back only what it took away itself.
            account_active_change_record(user=obj, actor=actor)
        if change and "is_staff" in form.changed_data:
            platform_roles_change_record(
                user=obj,
                granted=[ADMIN_SITE_ACCESS] if obj.is_staff else [],
                removed=[] if obj.is_staff else [ADMIN_SITE_ACCESS],
                actor=actor,
            )
        if change and "is_break_glass" in form.changed_data:
            # Admin saves in one transaction: the flag and its trace commit together.
            audit_record(
                actor=request.user,  # type: ignore[arg-type]
                verb="user.break_glass_granted" if obj.is_break_glass else "user.break_glass_revoked",
                target=obj,
                before={"is_break_glass": not obj.is_break_glass},
                after={"is_break_glass": obj.is_break_glass},
            )
        if change and "is_superuser" in form.changed_data:
            # Every permission there is: a platform role like the groups, and audited as one.
            platform_roles_change_record(
                user=obj,
                granted=[SUPERUSER] if obj.is_superuser else [],
                removed=[] if obj.is_superuser else [SUPERUSER],
                actor=actor,
            )

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        values, pk = _person_values(obj), obj.pk
        super().delete_model(request, obj)
        obj.pk = pk  # the trail names the account that was
        lifecycle_record(verb="user.deleted", target=obj, actor=request.user, values=values)  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            self.delete_model(request, user)


@admin.register(DirectorySyncRun)
class DirectorySyncRunAdmin(admin.ModelAdmin[DirectorySyncRun]):
    """The directory syncs, read-only, with a button that runs one now (org.directory_sync)."""

    change_list_template = "admin/org/directorysyncrun/change_list.html"
    list_display = ["started_at", "trigger", "requested_by", "outcome", "what_changed", "short_error"]
    # No filter sidebar: the newest runs are what matters, and the table needs the width.
    date_hierarchy = "started_at"
    readonly_fields = [field.name for field in DirectorySyncRun._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: DirectorySyncRun | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: DirectorySyncRun | None = None) -> bool:
        return False

    @admin.display(description="What changed")
    def what_changed(self, run: DirectorySyncRun) -> str:
        return run_summary(run)

    @admin.display(description="Error")
    def short_error(self, run: DirectorySyncRun) -> str:
        return run.error if len(run.error) <= 120 else f"{run.error[:119]}…"

    def get_urls(self) -> list[URLPattern]:
        sync_now = path(
            "sync-now/",
            self.admin_site.admin_view(self.sync_now_view),
            name="org_directorysyncrun_sync_now",
        )
        return [sync_now, *super().get_urls()]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        user: User = request.user  # type: ignore[assignment]
        context = {
            **(extra_context or {}),
            "may_sync_now": user.is_platform_admin,
            "entra_sync_every_minutes": round(settings.ENTRA_SYNC_EVERY_SECONDS / 60),
            "entra_sign_in_on": entra_sign_in_on(),
        }
        return super().changelist_view(request, context)

    def sync_now_view(self, request: HttpRequest) -> HttpResponse:
        user: User = request.user  # type: ignore[assignment]
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not user.is_platform_admin:
            raise PermissionDenied("Only platform admins run the directory sync.")
        run = directory_sync(trigger=DirectorySyncRun.Trigger.ADMIN, requested_by=user)
        if run.outcome == DirectorySyncRun.Outcome.SUCCEEDED:
            self.message_user(
                request, f"Synced with Microsoft Entra ID: {run_summary(run)}.", messages.SUCCESS
            )
        else:
            self.message_user(request, f"The sync failed: {run.error}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:org_directorysyncrun_changelist"))
