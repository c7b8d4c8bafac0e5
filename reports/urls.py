from django.urls import path

from reports import views

app_name = "reports"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("export/<slug:table>.csv", views.overview_export, name="overview_export"),
    path("departments/<slug:slug>/", views.department, name="department"),
    path(
        "departments/<slug:slug>/export/<slug:table>.csv", views.department_export, name="department_export"
    ),
    path("deployments/<int:pk>/", views.deployment, name="deployment"),
    path("deployments/<int:pk>/export/<slug:table>.csv", views.deployment_export, name="deployment_export"),
    path("chargeback/", views.chargeback_index, name="chargeback_index"),
    path("chargeback/<str:cost_center>/", views.chargeback, name="chargeback"),
    path("chargeback/<str:cost_center>/export.csv", views.chargeback_export, name="chargeback_export"),
    path("reconciliation/", views.reconciliation, name="reconciliation"),
    path("reconciliation/run/", views.reconciliation_run, name="reconciliation_run"),
]
