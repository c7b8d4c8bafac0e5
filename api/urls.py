from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from api import views
from api.problems import not_found_view
from api.v1 import url_patterns

not_found = login_not_required(csrf_exempt(not_found_view))

profile_patterns = (
    [
        path("", views.token_list, name="token_list"),
        path("<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
    ],
    "api",
)

urlpatterns = [
    path("profile/tokens/", include(profile_patterns)),
    path("api/v1/", include((url_patterns(), "api-v1"))),
    # Anything else under /api/ is a problem document too, never the portal's HTML 404.
    path("api/", not_found),
    path("api/<path:rest>", not_found),
]
