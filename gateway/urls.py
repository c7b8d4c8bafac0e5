"""The key pages, under a department: /departments/<slug>/keys/..."""

from django.urls import path

from gateway import views

app_name = "gateway"

urlpatterns = [
    path("", views.key_list, name="key_list"),
    path("new/", views.key_new, name="key_new"),
    path("<int:pk>/rotate/", views.key_rotate, name="key_rotate"),
    path("<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
]
