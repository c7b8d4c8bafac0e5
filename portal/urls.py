from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from org import views as org_views
from portal import health, pages

admin.site.site_header = "Switchyard administration"
admin.site.site_title = "Switchyard admin"
admin.site.index_title = "Organisation, access and configuration"

urlpatterns = [
    path("", org_views.home, name="home"),
    path("departments/", org_views.department_list, name="department_list"),
    path("departments/<slug:slug>/", pages.department_detail, name="department_detail"),
    path("departments/<slug:slug>/keys/", include("gateway.urls")),
    path("deployments/", include("provisioning.urls")),
    path("chat/", include("chat.urls")),
    path("data-sets/", include("grounding.urls")),
    path("", include("api.urls")),
    path("", include("approvals.urls")),
    path("costs/", include("reports.urls")),
    path("audit/", include("reports.audit_urls")),
    path("operations/", include("reports.operations_urls")),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    # Admin signs people in, and changes passwords, through the portal's own pages: one sign-in
    # with allauth's rate limits and the password policy, not a second one of admin's.
    path("admin/login/", org_views.admin_sign_in),
    path("admin/password_change/", RedirectView.as_view(pattern_name="account_change_password")),
    path("admin/", admin.site.urls),
]
