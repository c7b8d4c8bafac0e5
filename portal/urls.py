from django.contrib import admin
from django.urls import include, path

from portal import health, pages
from portal.org import views as org_views

admin.site.site_header = "Switchyard administration"
admin.site.site_title = "Switchyard admin"
admin.site.index_title = "Organisation, access and configuration"

urlpatterns = [
    path("", org_views.home, name="home"),
    path("departments/", org_views.department_list, name="department_list"),
    path("departments/<slug:slug>/", pages.department_detail, name="department_detail"),
    path("deployments/", include("provisioning.urls")),
    path("chat/", include("chat.urls")),
    path("", include("portal.approvals.urls")),
    path("costs/", include("portal.reports.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
