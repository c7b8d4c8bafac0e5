"""The forms that give a person a password (allauth's and Django admin's), refusing with a
message next to the form whatever the password policy refuses (org.passwords)."""

from typing import Any

from allauth.account import forms as allauth_forms
from django import forms
from django.contrib.auth import forms as auth_forms

from org.models import User
from org.passwords import SIGNS_IN_WITH_MICROSOFT, password_refusal, signs_in_with_entra


class RefusesPolicyPasswords:
    """For allauth's forms, which know the person as `self.user`."""

    user: User | None

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        refusal = password_refusal(self.user) if self.user is not None else None
        if refusal:
            raise forms.ValidationError(refusal, code="password_refused")
        return cleaned


class ChangePasswordForm(RefusesPolicyPasswords, allauth_forms.ChangePasswordForm):
    pass


class SetPasswordForm(RefusesPolicyPasswords, allauth_forms.SetPasswordForm):
    pass


class ResetPasswordKeyForm(RefusesPolicyPasswords, allauth_forms.ResetPasswordKeyForm):
    pass


class AdminPasswordChangeForm(auth_forms.AdminPasswordChangeForm):  # type: ignore[type-arg]
    """An admin may take a password away from an account that signs in with Entra ID, never
    give it one. (A password for a local account is the admin's call: while Entra sign-in is on
    it opens nothing unless the account is also marked break-glass.)"""

    user: User

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if cleaned.get("set_usable_password", True) and signs_in_with_entra(self.user):
            # Next to the field: admin's page shows no errors of the form as a whole.
            self.add_error(
                "password1", forms.ValidationError(SIGNS_IN_WITH_MICROSOFT, code="password_refused")
            )
        return cleaned


class UserChangeForm(auth_forms.UserChangeForm[User]):
    class Meta:
        model = User
        fields = "__all__"

    def clean_is_break_glass(self) -> bool:
        is_break_glass = bool(self.cleaned_data.get("is_break_glass"))
        if is_break_glass and signs_in_with_entra(self.instance):
            raise forms.ValidationError(SIGNS_IN_WITH_MICROSOFT, code="password_refused")
        return is_break_glass
