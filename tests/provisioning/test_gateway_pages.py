"""The deployment page's gateway sections: how to call it (everyone who may see the page), the
fallbacks and the access mode (listed for all, changed by platform admins), with the ladder for
the changes: anonymous, another department, the department's lead, a finance approver, an admin."""

import html
import re

import pytest
from django.test import Client

from audit.models import AuditEvent
from provisioning.models import Fallback, ModelDeployment, OpenAIAccount
from tests.factories import make_account, make_department, make_deployment, make_landing_zone

LOGIN = "/accounts/login/"
Sku = ModelDeployment.Sku
AccessMode = ModelDeployment.AccessMode


def text(response) -> str:
    return html.unescape(str(response.content.decode()))


def words(markup: str) -> str:
    """What a reader sees: the markup without its tags, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", "", markup).split())


@pytest.fixture
def zone(marketing):
    return make_landing_zone(
        name="Marketing subscription",
        owner_department=marketing,
        allowed_regions=["swedencentral", "westeurope", "eastus2"],
    )


@pytest.fixture
def copy_assistant(marketing, zone):
    marketing.entra_member_group_id = "6e1c8a4e-1d3b-4a51-8f0e-2b7a9c3d4e5f"
    marketing.save()
    return make_deployment(
        department=marketing,
        display_name="Marketing copy assistant",
        landing_zone=zone,
        account=make_account(landing_zone=zone),
        model_name="gpt-4o",
        model_version="2024-08-06",
        sku=Sku.STANDARD,
    )


@pytest.fixture
def west_europe(marketing, zone):
    return make_deployment(
        department=marketing,
        display_name="Copy West Europe",
        landing_zone=zone,
        region="westeurope",
        model_name="gpt-4o",
        model_version="2024-08-06",
        sku=Sku.STANDARD,
    )


@pytest.fixture
def east_us(marketing, zone):
    return make_deployment(
        department=marketing,
        display_name="Copy East US",
        landing_zone=zone,
        region="eastus2",
        model_name="gpt-4o",
        model_version="2024-08-06",
        sku=Sku.STANDARD,
    )


def page(client: Client, deployment: ModelDeployment) -> str:
    response = client.get(f"/deployments/{deployment.pk}/")
    assert response.status_code == 200
    return text(response)


class TestHowToCallIt:
    def test_the_lead_sees_the_gateway_name_addresses_and_snippets(
        self, client_for, copy_assistant, marketing_lead
    ):
        shown = page(client_for(marketing_lead), copy_assistant)

        assert copy_assistant.gateway_name == "marketing-copy-assistant"
        assert "How to call it" in shown
        assert 'base_url="http://testserver/openai/v1"' in shown
        assert 'azure_endpoint="http://testserver"' in shown
        assert 'model="marketing-copy-assistant"' in shown
        assert "curl http://testserver/openai/v1/chat/completions" in shown
        assert '-H "Authorization: Bearer $SWITCHYARD_API_KEY"' in shown
        assert 'href="/departments/marketing/keys/"' in shown

    def test_the_address_comes_from_the_setting_when_set(
        self, client_for, copy_assistant, marketing_lead, settings
    ):
        settings.GATEWAY_PUBLIC_URL = "https://switchyard.example.com/"

        shown = page(client_for(marketing_lead), copy_assistant)

        assert 'base_url="https://switchyard.example.com/openai/v1"' in shown
        assert "testserver" not in shown

    def test_an_embeddings_deployment_gets_embeddings_snippets(self, client_for, marketing, marketing_lead):
        embeddings = make_deployment(
            department=marketing,
            display_name="Search vectors",
            model_name="text-embedding-3-small",
            model_version="1",
        )

        shown = page(client_for(marketing_lead), embeddings)

        assert 'client.embeddings.create(model="search-vectors", input="Hello!")' in shown
        assert "/openai/v1/embeddings" in shown
        assert "chat.completions" not in shown

    def test_a_shared_service_links_to_the_keys_of_the_lead_s_own_department(
        self, client_for, finance, finance_lead, marketing
    ):
        shared = make_deployment(
            department=make_department(name="Central IT"),
            display_name="Company assistant",
            shared_with=[finance, marketing],
        )

        shown = page(client_for(finance_lead), shared)

        assert 'href="/departments/finance/keys/"' in shown
        assert "/departments/marketing/keys/" not in shown


class TestFallbacksOnThePage:
    def test_listed_for_the_lead_with_whether_each_is_tried(
        self, client_for, copy_assistant, west_europe, marketing_lead
    ):
        Fallback.objects.create(deployment=copy_assistant, fallback=west_europe, position=1)

        shown = page(client_for(marketing_lead), copy_assistant)

        assert "Copy West Europe" in shown
        assert "Tried on 429/503" in shown
        assert "Change the fallbacks" not in shown  # admins only

    def test_a_fallback_no_longer_tried_says_why(
        self, client_for, copy_assistant, west_europe, marketing_lead
    ):
        Fallback.objects.create(deployment=copy_assistant, fallback=west_europe, position=1)
        west_europe.data_classification = "public"
        west_europe.save()

        shown = page(client_for(marketing_lead), copy_assistant)

        assert "Skipped" in shown
        assert (
            "Not tried: Classification: Marketing copy assistant's callers may send internal data"
            in words(shown)
        )

    def test_the_admin_is_offered_eligible_ones_and_told_why_not_the_others(
        self, client_for, copy_assistant, west_europe, east_us, platform_admin
    ):
        shown = page(client_for(platform_admin), copy_assistant)

        assert "Change the fallbacks" in shown
        assert f'<option value="{west_europe.pk}">Copy West Europe' in shown
        assert f'<option value="{east_us.pk}">' not in shown
        assert (
            "Copy East US (Marketing, eastus2, Standard): Same data zone: Copy East US processes prompts "
            "in East US 2, and Marketing copy assistant's must stay in the EU data zone." in words(shown)
        )


class TestChangingFallbacks:
    def path(self, deployment) -> str:
        return f"/deployments/{deployment.pk}/fallbacks/"

    def test_anonymous_visitors_are_sent_to_sign_in(self, client, copy_assistant, west_europe):
        response = client.post(self.path(copy_assistant), {"fallback_1": west_europe.pk})

        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN)
        assert not Fallback.objects.exists()

    def test_another_departments_lead_gets_not_found(
        self, client_for, copy_assistant, west_europe, finance_lead
    ):
        response = client_for(finance_lead).post(self.path(copy_assistant), {"fallback_1": west_europe.pk})

        assert response.status_code == 404
        assert not Fallback.objects.exists()

    @pytest.mark.parametrize("who", ["marketing_lead", "finance_approver"])
    def test_the_lead_and_finance_are_refused(self, request, client_for, copy_assistant, west_europe, who):
        response = client_for(request.getfixturevalue(who)).post(
            self.path(copy_assistant), {"fallback_1": west_europe.pk}
        )

        assert response.status_code == 403
        assert not Fallback.objects.exists()

    def test_an_admin_sets_them_in_order(self, client_for, copy_assistant, west_europe, platform_admin, zone):
        france = make_deployment(
            department=copy_assistant.department,
            display_name="Copy France",
            landing_zone=zone,
            region="francecentral",
            model_name="gpt-4o",
            model_version="2024-08-06",
            sku=Sku.STANDARD,
        )
        signed_in = client_for(platform_admin)

        response = signed_in.post(
            self.path(copy_assistant),
            {"fallback_1": france.pk, "fallback_2": "", "fallback_3": west_europe.pk},
        )

        assert response.status_code == 302
        assert [link.fallback for link in Fallback.objects.filter(deployment=copy_assistant)] == [
            france,
            west_europe,
        ]
        shown = text(signed_in.get(response["Location"]))
        assert "Marketing copy assistant falls back to Copy France, then Copy West Europe." in shown

    def test_a_refused_fallback_is_explained_and_nothing_changes(
        self, client_for, copy_assistant, east_us, platform_admin
    ):
        signed_in = client_for(platform_admin)

        response = signed_in.post(self.path(copy_assistant), {"fallback_1": east_us.pk}, follow=True)

        assert "Copy East US cannot be a fallback. Same data zone" in text(response)
        assert not Fallback.objects.exists()

    def test_nonsense_is_refused_with_a_message(self, client_for, copy_assistant, platform_admin):
        response = client_for(platform_admin).post(
            self.path(copy_assistant), {"fallback_1": "x"}, follow=True
        )

        assert "Choose each fallback from the list." in text(response)
        response = client_for(platform_admin).post(
            self.path(copy_assistant), {"fallback_1": 999999}, follow=True
        )
        assert "no longer exists" in text(response)


class TestAccessMode:
    def path(self, deployment) -> str:
        return f"/deployments/{deployment.pk}/access-mode/"

    def test_shown_to_the_lead_without_the_form(self, client_for, copy_assistant, marketing_lead):
        shown = page(client_for(marketing_lead), copy_assistant)

        assert "Through Switchyard only" in shown
        assert "Save access mode" not in shown

    def test_anonymous_visitors_are_sent_to_sign_in(self, client, copy_assistant):
        response = client.post(self.path(copy_assistant), {"access_mode": "direct"})

        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN)

    def test_another_departments_lead_gets_not_found(self, client_for, copy_assistant, finance_lead):
        assert (
            client_for(finance_lead).post(self.path(copy_assistant), {"access_mode": "direct"}).status_code
            == 404
        )

    def test_the_lead_is_refused(self, client_for, copy_assistant, marketing_lead):
        response = client_for(marketing_lead).post(self.path(copy_assistant), {"access_mode": "direct"})

        assert response.status_code == 403
        assert ModelDeployment.objects.get(pk=copy_assistant.pk).access_mode == AccessMode.GATEWAY

    def test_an_admin_allows_direct_calls(
        self, client_for, copy_assistant, platform_admin, django_capture_on_commit_callbacks
    ):
        signed_in = client_for(platform_admin)

        with django_capture_on_commit_callbacks() as callbacks:
            response = signed_in.post(self.path(copy_assistant), {"access_mode": "direct"}, follow=True)

        assert ModelDeployment.objects.get(pk=copy_assistant.pk).access_mode == AccessMode.DIRECT
        assert len(callbacks) == 1  # Azure's role assignments follow after the commit
        shown = text(response)
        assert "Marketing copy assistant: direct calls allowed for the department's group." in shown
        assert "Direct calls allowed" in shown
        assert AuditEvent.objects.filter(verb="deployment.access_mode_changed", actor=platform_admin).exists()

    def test_direct_is_not_offered_on_a_shared_account_and_the_rule_is_explained(
        self, client_for, copy_assistant, finance, platform_admin
    ):
        make_deployment(
            department=finance,
            display_name="Ledger helper",
            landing_zone=copy_assistant.landing_zone,
            account=copy_assistant.account,
        )
        signed_in = client_for(platform_admin)

        shown = page(signed_in, copy_assistant)
        assert 'value="direct" disabled' in shown
        assert "also hosts Finance's Ledger helper" in shown

        response = signed_in.post(self.path(copy_assistant), {"access_mode": "direct"}, follow=True)
        assert "Direct access needs an account that belongs to Marketing alone" in text(response)
        assert ModelDeployment.objects.get(pk=copy_assistant.pk).access_mode == AccessMode.GATEWAY

    def test_contradicting_role_assignments_are_shown(self, client_for, copy_assistant, marketing_lead):
        OpenAIAccount.objects.filter(pk=copy_assistant.account_id).update(
            drift={
                "role_assignments": [
                    {
                        "principal": "6e1c8a4e-1d3b-4a51-8f0e-2b7a9c3d4e5f",
                        "principal_type": "Group",
                        "department": "Marketing",
                        "role": "Cognitive Services OpenAI User",
                        "scope": copy_assistant.account.arm_id,
                        "why": "the account's deployments are gateway-only",
                    }
                ]
            }
        )

        shown = page(client_for(marketing_lead), copy_assistant)

        assert "Azure's role assignments contradict this" in shown
        assert (
            "Marketing's group holds Cognitive Services OpenAI User: the account's deployments are "
            "gateway-only." in words(shown)
        )


def test_the_live_poll_of_the_operation_log_skips_the_gateway_sections(
    client_for, copy_assistant, marketing_lead
):
    response = client_for(marketing_lead).get(
        f"/deployments/{copy_assistant.pk}/", headers={"HX-Request": "true", "HX-Target": "operation-log"}
    )

    assert response.status_code == 200
    assert "How to call it" not in text(response)
