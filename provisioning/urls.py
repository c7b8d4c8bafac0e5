from django.urls import path

from provisioning import views

urlpatterns = [
    path("", views.deployment_list, name="deployment_list"),
    path("<int:pk>/", views.deployment_detail, name="deployment_detail"),
    path("<int:pk>/fallbacks/", views.deployment_fallbacks_set, name="deployment_fallbacks_set"),
    path("<int:pk>/access-mode/", views.deployment_access_mode_set, name="deployment_access_mode_set"),
    path("leftovers/<int:pk>/remove/", views.leftover_remove, name="leftover_remove"),
]
