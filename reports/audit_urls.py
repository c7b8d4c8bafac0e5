from django.urls import path

from reports import audit_views

app_name = "audit-trail"

urlpatterns = [
    path("", audit_views.events, name="events"),
    path("export.csv", audit_views.export_csv, name="export-csv"),
    path("export.jsonl", audit_views.export_jsonl, name="export-jsonl"),
    path("<int:sequence>/", audit_views.event, name="event"),
]
