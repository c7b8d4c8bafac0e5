from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.models import SocialLogin
from django import forms
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from org.entra_provider import nonce_matches
from org.models import User
from org.passwords import ENTRA_PROVIDER_ID, password_refusal, refusal_behind_right_password
from org.services import sign_in_failed_record


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # People arrive through Entra ID or are created by an admin.
        return bool(settings.ACCOUNT_ALLOW_SIGNUP)

    def authenticate(self, request: HttpRequest, **credentials: Any) -> AbstractBaseUser | None:
        # The backends refuse what the password policy refuses; a refused attempt counts as a
        # failed one for the rate limits, as any other does. Only a person who knows the
        # password is told why it does not work.
        user: AbstractBaseUser | None = super().authenticate(request, **credentials)
        if isinstance(user, User):
            # allauth may hand back a person its backend turned down (one it stashed as inactive).
            refusal = password_refusal(user)
        else:
            refusal = refusal_behind_right_password(
                email=str(credentials.get("email", "")), password=str(credentials.get("password", ""))
            )
        if refusal:
            raise forms.ValidationError(refusal, code="password_refused")
        return user

    def send_password_reset_mail(self, user: AbstractBaseUser, email: str, context: dict[str, Any]) -> None:
        # The reset page answers every address the same way (nobody learns which accounts
        # exist or are break-glass there); the account's owner learns from the email instead.
        assert isinstance(user, User)
        refusal = password_refusal(user)
        if refusal:
            self.send_mail("account/email/password_reset_refused", email, {"user": user, "refusal": refusal})
            return
        super().send_password_reset_mail(user, email, context)

    def set_password(self, user: AbstractBaseUser, password: str) -> None:
        # Every allauth flow that gives a password ends here; its form has refused already, with
        # a message (org.forms). This is the last line should a new flow skip that.
        assert isinstance(user, User)
        refusal = password_refusal(user)
        if refusal:
            raise PermissionDenied(refusal)
        super().set_password(user, password)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        # allauth checked the state (and PKCE, at the token endpoint); the nonce is ours to check.
        if sociallogin.account.provider == ENTRA_PROVIDER_ID and not nonce_matches(sociallogin):
            raise ImmediateHttpResponse(
                render_authentication_error(
                    request,
                    sociallogin.account.get_provider(),
                    exception=PermissionDenied("the ID token does not carry this sign-in's nonce"),
                )
            )
        super().pre_social_login(request, sociallogin)

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: str | None = None,
        exception: BaseException | None = None,
        extra_context: dict[str, Any] | None = None,
    ) -> None:
        # Nobody is known yet (Entra ID did not say who): the trail keeps what went wrong.
        reason = f"{error or 'error'}: {exception}" if exception else (error or "error")
        sign_in_failed_record(email="", note=f"Microsoft Entra ID sign-in failed ({reason}).")
        super().on_authentication_error(request, provider, error, exception, extra_context)

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]) -> User:
        user: User = super().populate_user(request, sociallogin, data)
        claims = sociallogin.account.extra_data.get("id_token", {})
        # Entra ID sends `email` only as an optional claim; the UPN is always there.
        user.email = (claims.get("email") or claims.get("preferred_username") or user.email).lower()
        user.first_name = claims.get("given_name") or user.first_name
        user.last_name = claims.get("family_name") or user.last_name
        if not (user.first_name or user.last_name) and claims.get("name"):
            user.first_name = claims["name"]
        return user
