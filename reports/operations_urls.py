from django.urls import path

from reports import operations_views

app_name = "operations"

urlpatterns = [
    path("", operations_views.operations, name="page"),
]
