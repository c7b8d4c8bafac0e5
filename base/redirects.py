"""Where a page sends the browser back to after a form: only a path on this site."""

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def same_site_path(request: HttpRequest, candidate: str, *, default: str) -> str:
    """`candidate` when it is a path on this site, else `default`. `redirect` would take anything
    else for the name of a view (a 500), and another site's address makes an open redirect."""
    if candidate.startswith("/") and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default
