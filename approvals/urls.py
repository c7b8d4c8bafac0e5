from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("requests/", views.request_list, name="request_list"),
    path("requests/new/", views.request_new, name="request_new"),
    path("requests/new/preview/", views.request_preview, name="request_preview"),
    path("requests/<int:pk>/", views.request_detail, name="request_detail"),
    path("requests/<int:pk>/edit/", views.request_edit, name="request_edit"),
    path("requests/<int:pk>/decide/", views.request_decide, name="request_decide"),
    path("requests/<int:pk>/submit/", views.request_submit, name="request_submit"),
    path("requests/<int:pk>/cancel/", views.request_cancel, name="request_cancel"),
    path("requests/<int:pk>/retry/", views.request_retry, name="request_retry"),
    path("approvals/", views.approval_queue, name="approval_queue"),
    path("groundings/ask/<int:deployment_id>/", views.grounding_ask, name="grounding_ask"),
    path("groundings/<int:pk>/remove/", views.grounding_remove_view, name="grounding_remove"),
]
