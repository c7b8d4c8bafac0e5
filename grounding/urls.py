from django.urls import path

from grounding import views

app_name = "grounding"

urlpatterns = [
    path("", views.data_set_list, name="data_set_list"),
    path("new/", views.data_set_new, name="data_set_new"),
    path("<int:data_set_id>/", views.data_set_detail, name="data_set_detail"),
    path("<int:data_set_id>/edit/", views.data_set_edit, name="data_set_edit"),
    path("<int:data_set_id>/delete/", views.data_set_delete_view, name="data_set_delete"),
    path("<int:data_set_id>/documents/", views.document_upload_view, name="document_upload"),
    path("documents/<int:document_id>/", views.document_view, name="document_view"),
    path("documents/<int:document_id>/download/", views.document_download, name="document_download"),
    path("documents/<int:document_id>/delete/", views.document_delete_view, name="document_delete"),
    path("documents/<int:document_id>/retry/", views.document_retry_view, name="document_retry"),
]
