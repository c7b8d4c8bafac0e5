"""The deployment page's forms for platform admins: the fallbacks in order, the access mode."""

from typing import Any

from django import forms

from provisioning.fallbacks import MAX_FALLBACKS, Candidate
from provisioning.models import ModelDeployment

# The largest id a deployment can have (a 64-bit key): anything larger is no deployment.
BIGINT_MAX = 2**63 - 1


class FallbacksForm(forms.Form):
    """One select per position, offering the eligible candidates (and the fallbacks set now, so
    that a fallback that no longer fits still shows where it stands). A deployment that is not
    offered may still be posted: the service then says which rule it breaks."""

    def __init__(
        self,
        data: Any = None,
        *,
        candidates: list[Candidate],
        current: list[ModelDeployment],
    ) -> None:
        initial = {f"fallback_{position}": fallback.pk for position, fallback in enumerate(current, start=1)}
        super().__init__(data, initial=initial)
        offered = {c.deployment.pk: c.deployment for c in candidates if c.eligible}
        offered.update({fallback.pk: fallback for fallback in current})
        choices = [("", "— None —")] + [(pk, _label(deployment)) for pk, deployment in offered.items()]
        for position in range(1, MAX_FALLBACKS + 1):
            self.fields[f"fallback_{position}"] = forms.IntegerField(
                label=f"Fallback {position}",
                required=False,
                min_value=1,
                max_value=BIGINT_MAX,
                widget=forms.Select(choices=choices),
            )

    def chosen_ids(self) -> list[int]:
        """The chosen deployments' ids in order, gaps closed."""
        values = [self.cleaned_data.get(f"fallback_{position}") for position in range(1, MAX_FALLBACKS + 1)]
        return [value for value in values if value is not None]


def _label(deployment: ModelDeployment) -> str:
    return f"{deployment.display_name} · {deployment.region} · {deployment.get_sku_display()}"


class AccessModeForm(forms.Form):
    access_mode = forms.ChoiceField(choices=ModelDeployment.AccessMode.choices)
