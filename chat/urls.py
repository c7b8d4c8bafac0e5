from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.index, name="index"),
    path("new", views.start, name="start"),
    path("search", views.search, name="search"),
    path("export", views.export_all, name="export_all"),
    path("<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
    path("<uuid:conversation_id>/messages", views.stream, name="stream"),
    path("<uuid:conversation_id>/regenerate", views.regenerate, name="regenerate"),
    path("<uuid:conversation_id>/rename", views.rename, name="rename"),
    path("<uuid:conversation_id>/delete", views.delete, name="delete"),
    path("<uuid:conversation_id>/export", views.export, name="export"),
]
