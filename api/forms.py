"""The profile page's token form: what a person types, read into values `access_token_create`
takes; its rules' messages go next to the fields they are about."""

from django import forms

from api.tokens import DEFAULT_DAYS, MAX_DAYS, NAME_LENGTH, FieldErrors


class AccessTokenForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_LENGTH,
        error_messages={"required": "Name the token after the script or tool that uses it."},
        help_text="The script or tool that uses it, e.g. “Terraform pipeline”: tokens are told apart by it.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        initial=DEFAULT_DAYS,
        min_value=1,
        max_value=MAX_DAYS,
        help_text=f"From 1 to {MAX_DAYS} days. Make a new token before it runs out.",
        error_messages={"required": f"Say how many days it lasts, 1 to {MAX_DAYS}."},
    )

    def add_rule_errors(self, errors: FieldErrors) -> None:
        for field, messages in errors.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
