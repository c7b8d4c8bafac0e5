"""The data set form: what a lead sets, handed to the services as a `DataSetSpec`."""

from typing import Any

from django import forms
from django.db.models import QuerySet

from grounding.models import DataSet
from grounding.services import DataSetSpec
from org.models import Department, Membership, User
from provisioning.models import DataClassification

CLASSIFICATION_HELP = (
    "What its documents hold. Confidential and restricted data need a security approval before an "
    "assistant is grounded on them."
)


class DataSetForm(forms.Form):
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(), to_field_name="slug", empty_label=None
    )
    name = forms.CharField(
        max_length=DataSet._meta.get_field("name").max_length,
        help_text="What leads and assistants' users see, e.g. “Employee handbook”.",
    )
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="What it holds and what it is for: the owner reads it when an assistant asks for it.",
    )
    data_classification = forms.ChoiceField(
        label="Data classification", choices=DataClassification.choices, help_text=CLASSIFICATION_HELP
    )
    owner = forms.ChoiceField(
        help_text="A lead of the department, who approves the assistants grounded on it.",
    )

    def __init__(
        self,
        data: Any = None,
        *,
        departments: QuerySet[Department] | None = None,
        actor: User,
        data_set: DataSet | None = None,
    ) -> None:
        initial: dict[str, Any] = {"owner": str(actor.pk), "data_classification": DataClassification.INTERNAL}
        if data_set is not None:
            initial = {
                "name": data_set.name,
                "description": data_set.description,
                "data_classification": data_set.data_classification,
                "owner": str(data_set.owner_id),
            }
            departments = Department.objects.filter(pk=data_set.department_id)
        assert departments is not None, "a new data set needs the departments to choose from"
        super().__init__(data, initial=initial)
        self.data_set = data_set
        self.departments = list(departments.order_by("name"))
        self.fields["department"].queryset = departments  # type: ignore[attr-defined]
        if data_set is not None or len(self.departments) == 1:
            # Nothing to choose: the department is named in the page's title instead.
            self.fields["department"].widget = forms.HiddenInput()
            self.fields["department"].initial = self.departments[0].slug if self.departments else None
        self.leads = self._leads_by_department()
        self.fields["owner"].choices = self._owner_choices()  # type: ignore[attr-defined]

    def _leads_by_department(self) -> dict[int, list[User]]:
        leads: dict[int, list[User]] = {department.pk: [] for department in self.departments}
        memberships = (
            Membership.objects.filter(department__in=self.departments, role=Membership.Role.LEAD)
            .select_related("user")
            .order_by("user__first_name", "user__last_name", "user__email")
        )
        for membership in memberships:
            leads[membership.department_id].append(membership.user)
        return leads

    def _owner_choices(self) -> list[Any]:
        def named(users: list[User]) -> list[tuple[str, str]]:
            return [(str(user.pk), f"{user.display_name} ({user.email})") for user in users]

        if len(self.departments) == 1:
            return named(self.leads[self.departments[0].pk])
        return [(department.name, named(self.leads[department.pk])) for department in self.departments]

    @property
    def single_department(self) -> Department | None:
        return self.departments[0] if len(self.departments) == 1 else None

    def clean_name(self) -> str:
        return " ".join(self.cleaned_data["name"].split())

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        department = cleaned.get("department")
        owner_id = cleaned.get("owner")
        if department is not None and owner_id:
            owner = next((lead for lead in self.leads[department.pk] if str(lead.pk) == owner_id), None)
            if owner is None:
                self.add_error("owner", f"Choose one of {department.name}'s leads.")
            else:
                cleaned["owner_user"] = owner
        return cleaned

    def spec(self) -> DataSetSpec:
        return DataSetSpec(
            name=self.cleaned_data["name"],
            description=self.cleaned_data["description"].strip(),
            data_classification=self.cleaned_data["data_classification"],
            owner=self.cleaned_data["owner_user"],
        )

    @property
    def department_chosen(self) -> Department:
        department: Department = self.cleaned_data["department"]
        return department
