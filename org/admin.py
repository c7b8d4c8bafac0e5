from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from audit.services import audit_record
from org.forms import AdminPasswordChangeForm, UserChangeForm
from org.models import Department, Membership, User


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
class DepartmentAdmin(admin.ModelAdmin[Department]):
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


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):
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

    def save_model(self, request: HttpRequest, obj: User, form: ModelForm[User], change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and "is_break_glass" in form.changed_data:
            # Admin saves in one transaction: the flag and its trace commit together.
            audit_record(
                actor=request.user,  # type: ignore[arg-type]
                verb="user.break_glass_granted" if obj.is_break_glass else "user.break_glass_revoked",
                target=obj,
                before={"is_break_glass": not obj.is_break_glass},
                after={"is_break_glass": obj.is_break_glass},
            )
