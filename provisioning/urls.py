from django.urls import path

from provisioning import views

urlpatterns = [
    path("", views.deployment_list, name="deployment_list"),
    path("<int:pk>/", views.deployment_detail, name="deployment_detail"),
    path("leftovers/<int:pk>/remove/", views.leftover_remove, name="leftover_remove"),
]
