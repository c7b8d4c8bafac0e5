"""The key forms: what a lead types, read into values the services take; the services' rules
(`gateway.keys.api_key_errors`) put their messages next to the fields they are about."""

from typing import Any

from django import forms

from gateway.keys import (
    DEFAULT_DAYS,
    DEFAULT_GRACE_HOURS,
    MAX_DAYS,
    MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_MINUTE,
    NAME_LENGTH,
    PURPOSE_LENGTH,
    FieldErrors,
    deployments_for_keys,
)
from org.models import Department
from provisioning.models import DataClassification, ModelDeployment

GRACE_CHOICES = [
    ("0", "Stop the old key now"),
    ("1", "1 hour"),
    ("24", "24 hours"),
    ("72", "3 days"),
    ("168", "7 days"),
]


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=NAME_LENGTH,
        error_messages={"required": "Name the key after the application that uses it."},
        help_text="The application that uses it, e.g. “Website chat widget”: keys are told apart by it.",
    )
    # Plain choices of ids rather than a model field: a posted value is checked against the
    # offered ids before any query sees it.
    deployments = forms.MultipleChoiceField(
        label="May call",
        widget=forms.CheckboxSelectMultiple,
        help_text="Among the department's own deployments and the shared services granted to it.",
        error_messages={
            "required": "Choose at least one deployment the key may call.",
            "invalid_choice": "%(value)s is not a deployment this department may use.",
        },
    )
    requests_per_minute = forms.IntegerField(
        label="Requests per minute",
        required=False,
        min_value=1,
        max_value=MAX_REQUESTS_PER_MINUTE,
        help_text="Empty: no limit of its own (the department's budget and the deployment's still apply).",
    )
    tokens_per_minute = forms.IntegerField(
        label="Tokens per minute",
        required=False,
        min_value=1,
        max_value=MAX_TOKENS_PER_MINUTE,
        help_text="Empty: no limit of its own.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        min_value=1,
        max_value=MAX_DAYS,
        initial=DEFAULT_DAYS,
        help_text=f"{DEFAULT_DAYS} days unless you choose otherwise; at most {MAX_DAYS}.",
    )
    purpose = forms.CharField(
        label="What the application does with restricted data",
        required=False,
        max_length=PURPOSE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Approvers read it before the key works.",
    )

    def __init__(self, data: Any = None, *, department: Department) -> None:
        super().__init__(data)
        self.department = department
        self.offered = {str(d.pk): d for d in deployments_for_keys(department).select_related("department")}
        self.fields["deployments"].choices = [  # type: ignore[attr-defined]
            (pk, self._label(deployment)) for pk, deployment in self.offered.items()
        ]

    @staticmethod
    def _label(deployment: ModelDeployment) -> str:
        label = f"{deployment.display_name} · {deployment.gateway_name}"
        if deployment.scope == ModelDeployment.Scope.SHARED:
            label += " · shared service"
        if deployment.state != ModelDeployment.State.ACTIVE:
            label += " · being provisioned"
        if deployment.data_classification == DataClassification.RESTRICTED:
            label += " · restricted data: needs approval"
        return label

    @property
    def has_restricted_choices(self) -> bool:
        return any(d.data_classification == DataClassification.RESTRICTED for d in self.offered.values())

    def chosen_deployments(self) -> list[ModelDeployment]:
        return [self.offered[pk] for pk in self.cleaned_data["deployments"]]

    def add_rule_errors(self, errors: FieldErrors) -> None:
        """The services' messages next to their fields; a field that already has one keeps it."""
        for name, messages in errors.items():
            field = name if name in self.fields else None
            if field is not None and field in self.errors:
                continue
            for message in messages:
                self.add_error(field, message)


class RotateForm(forms.Form):
    grace_hours = forms.TypedChoiceField(
        label="The old key keeps working for",
        choices=GRACE_CHOICES,
        coerce=int,
        initial=str(DEFAULT_GRACE_HOURS),
        help_text="Time to put the new key into the application before the old one stops.",
    )
