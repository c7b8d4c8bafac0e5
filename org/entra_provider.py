"""allauth's OpenID Connect provider, as Microsoft Entra ID sign-in needs it: with a nonce.

allauth sends `state` (and, with OAUTH_PKCE_ENABLED, a PKCE challenge) but no nonce, so an ID
token replayed from another sign-in would pass. This provider puts a fresh nonce in every
authorization request and keeps it in the sign-in's state; `nonce_matches` compares it with the
ID token's when the person comes back (org.adapters.SocialAccountAdapter.pre_social_login).

Settings name it with SOCIALACCOUNT_PROVIDERS["openid_connect"]["provider_class"].
"""

import secrets
from typing import Any

from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from django.http import HttpRequest, HttpResponse


class EntraProvider(OpenIDConnectProvider):  # type: ignore[misc]  # allauth ships no types
    # allauth finds a provider's URLs (login, callback) in its package: they stay OpenID Connect's.
    package = "allauth.socialaccount.providers.openid_connect"

    def redirect(
        self, request: HttpRequest, process: Any, next_url: Any = None, data: Any = None, **kwargs: Any
    ) -> HttpResponse:
        nonce = secrets.token_urlsafe(32)
        auth_params = kwargs.pop("auth_params", None)
        auth_params = dict(self.get_auth_params() if auth_params is None else auth_params)
        auth_params["nonce"] = nonce
        # What stays in kwargs is stashed with the state, beside the PKCE verifier.
        response: HttpResponse = super().redirect(
            request, process, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs
        )
        return response


def nonce_matches(sociallogin: SocialLogin) -> bool:
    """Whether the ID token answers this sign-in's own request: it carries the nonce sent."""
    sent = (sociallogin.state or {}).get("nonce")
    received = sociallogin.account.extra_data.get("id_token", {}).get("nonce")
    if not isinstance(sent, str) or not sent or not isinstance(received, str):
        return False
    return secrets.compare_digest(sent, received)
