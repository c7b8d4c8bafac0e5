"""Which deployments may take a deployment's calls when it is busy: the rules (model, data zone,
classification, network, who pays), the chain's order as the gateway reads it, and refusals an
admin can read."""

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from provisioning.fallbacks import (
    FallbackRefused,
    fallback_candidates,
    fallback_chain,
    fallbacks_of,
    fallbacks_set,
)
from provisioning.models import AccessGrant, CatalogEntry, ModelDeployment, NetworkMode
from tests.factories import make_department, make_deployment, make_landing_zone

Sku = ModelDeployment.Sku
State = ModelDeployment.State


@pytest.fixture
def zone(marketing):
    return make_landing_zone(
        name="Marketing subscription",
        owner_department=marketing,
        allowed_regions=["swedencentral", "westeurope", "francecentral", "eastus2", "japaneast"],
    )


@pytest.fixture
def deploy(marketing, zone):
    """A Marketing deployment of gpt-4o; options override region, SKU and the rest."""

    def make(display_name: str, **options):
        values = {
            "department": marketing,
            "landing_zone": zone,
            "display_name": display_name,
            "model_name": "gpt-4o",
            "model_version": "2024-08-06",
            "sku": Sku.STANDARD,
            "region": "swedencentral",
        }
        classification = options.pop("data_classification", "internal")
        values.update(options)
        deployment = make_deployment(**values)
        deployment.data_classification = classification
        deployment.save(update_fields=["data_classification"])
        return deployment

    return make


def refusal_of(primary, candidate, admin) -> str:
    with pytest.raises(FallbackRefused) as refused:
        fallbacks_set(deployment=primary, fallbacks=[candidate], actor=admin)
    return str(refused.value)


class TestDataZone:
    def test_a_regional_deployment_falls_back_within_its_data_zone(self, deploy, platform_admin):
        primary = deploy("Copy assistant")
        west_europe = deploy("Copy West Europe", region="westeurope")
        data_zone = deploy("Copy EU data zone", region="francecentral", sku=Sku.DATA_ZONE_STANDARD)

        fallbacks_set(deployment=primary, fallbacks=[west_europe, data_zone], actor=platform_admin)

        assert fallback_chain(primary) == [west_europe, data_zone]

    def test_never_across_a_data_zone_boundary(self, deploy, platform_admin):
        primary = deploy("Copy assistant")
        east_us = deploy("Copy East US", region="eastus2")
        us_zone = deploy("Copy US data zone", region="eastus2", sku=Sku.DATA_ZONE_STANDARD)

        assert refusal_of(primary, east_us, platform_admin) == (
            "Copy East US cannot be a fallback. Same data zone: Copy East US processes prompts in "
            "East US 2, and Copy assistant's must stay in the EU data zone."
        )
        assert "Same data zone" in refusal_of(primary, us_zone, platform_admin)
        assert fallbacks_of(primary) == []

    def test_a_global_fallback_only_for_a_global_primary(self, deploy, platform_admin):
        regional = deploy("Copy assistant")
        data_zone = deploy("Copy EU zone", sku=Sku.DATA_ZONE_STANDARD)
        global_primary = deploy("Copy global", sku=Sku.GLOBAL_STANDARD)
        global_fallback = deploy("Copy global backup", region="eastus2", sku=Sku.GLOBAL_STANDARD)

        for primary in (regional, data_zone):
            message = refusal_of(primary, global_fallback, platform_admin)
            assert "Global deployment" in message
            assert "anywhere in the world" in message

        # A Global primary's callers accept any region already: a Global or a regional fallback.
        east_us = deploy("Copy East US", region="eastus2")
        fallbacks_set(deployment=global_primary, fallbacks=[global_fallback, east_us], actor=platform_admin)
        assert fallback_chain(global_primary) == [global_fallback, east_us]

    def test_a_data_zone_deployment_keeps_to_its_zone(self, deploy, platform_admin):
        primary = deploy("Copy EU zone", sku=Sku.DATA_ZONE_STANDARD)
        regional = deploy("Copy West Europe", region="westeurope")
        us_zone = deploy("Copy US zone", region="eastus2", sku=Sku.DATA_ZONE_STANDARD)

        assert "the EU data zone" in refusal_of(primary, us_zone, platform_admin)
        fallbacks_set(deployment=primary, fallbacks=[regional], actor=platform_admin)
        assert fallback_chain(primary) == [regional]

    def test_a_region_outside_every_data_zone_keeps_prompts_in_the_region(self, deploy, platform_admin):
        ptu = deploy("Copy Japan", region="japaneast", sku=Sku.PROVISIONED, capacity=50)
        twin = deploy("Copy Japan spillover", region="japaneast", sku=Sku.STANDARD)
        elsewhere = deploy("Copy Sweden", region="swedencentral")

        assert refusal_of(ptu, elsewhere, platform_admin).endswith("must stay in Japan East.")
        fallbacks_set(deployment=ptu, fallbacks=[twin], actor=platform_admin)
        assert fallback_chain(ptu) == [twin]

    def test_a_provisioned_deployment_spills_over_to_its_pay_as_you_go_twin(self, deploy, platform_admin):
        ptu = deploy("Copy PTU", sku=Sku.DATA_ZONE_PROVISIONED, capacity=15)
        twin = deploy("Copy PTU spillover", sku=Sku.DATA_ZONE_STANDARD)

        fallbacks_set(deployment=ptu, fallbacks=[twin], actor=platform_admin)

        assert fallback_chain(ptu) == [twin]


class TestModelAndData:
    def test_the_same_model(self, deploy, platform_admin):
        primary = deploy("Copy assistant")
        mini = deploy("Mini", model_name="gpt-4o-mini", model_version="2024-07-18")

        assert refusal_of(primary, mini, platform_admin) == (
            "Mini cannot be a fallback. Same model: Mini runs gpt-4o-mini, and callers of Copy "
            "assistant ask for gpt-4o."
        )

    def test_another_version_only_when_it_takes_every_call(self, deploy, platform_admin):
        for version, output in (("2024-08-06", 16384), ("2024-11-20", 16384), ("2024-05-13", 4096)):
            for sku in (Sku.STANDARD,):
                CatalogEntry.objects.create(
                    region="swedencentral",
                    model_name="gpt-4o",
                    model_version=version,
                    sku=sku,
                    usage_name="OpenAI.Standard.gpt-4o",
                    max_context_tokens=128000,
                    max_output_tokens=output,
                    synced_at=timezone.now(),
                )
        primary = deploy("Copy assistant")
        newer = deploy("Copy newer", model_version="2024-11-20")
        older = deploy("Copy older", model_version="2024-05-13")

        assert "Same model version" in refusal_of(primary, older, platform_admin)
        fallbacks_set(deployment=primary, fallbacks=[newer], actor=platform_admin)
        assert fallback_chain(primary) == [newer]

    def test_embeddings_never_change_version(self, deploy, platform_admin):
        primary = deploy("Embeddings", model_name="text-embedding-3-small", model_version="1")
        other = deploy("Embeddings 2", model_name="text-embedding-3-small", model_version="2")
        assert "the synced catalog does not say yet" in refusal_of(primary, other, platform_admin)

        for version in ("1", "2"):
            CatalogEntry.objects.create(
                region="swedencentral",
                model_name="text-embedding-3-small",
                model_version=version,
                sku=Sku.STANDARD,
                usage_name="OpenAI.Standard.text-embedding-3-small",
                max_context_tokens=8191,
                synced_at=timezone.now(),
            )

        assert refusal_of(primary, other, platform_admin).endswith(
            "Same model version: Embeddings 2 runs text-embedding-3-small 2: an embeddings model's "
            "vectors from two versions cannot be compared."
        )

    def test_restricted_data_only_to_a_restricted_fallback(self, deploy, platform_admin):
        primary = deploy("HR assistant", data_classification="restricted")
        internal = deploy("HR backup", region="westeurope", data_classification="internal")
        restricted = deploy("HR restricted backup", region="westeurope", data_classification="restricted")

        assert refusal_of(primary, internal, platform_admin) == (
            "HR backup cannot be a fallback. Same classification: HR assistant holds restricted data, "
            "and HR backup is not classified restricted."
        )
        fallbacks_set(deployment=primary, fallbacks=[restricted], actor=platform_admin)
        assert fallback_chain(primary) == [restricted]

    def test_a_fallback_cleared_for_less_is_refused(self, deploy, platform_admin):
        primary = deploy("Copy assistant", data_classification="confidential")
        public = deploy("Copy public", region="westeurope", data_classification="public")

        assert "cleared for public data only" in refusal_of(primary, public, platform_admin)

    def test_a_private_deployment_stays_private(self, deploy, platform_admin):
        primary = deploy("Copy private", network_mode=NetworkMode.PRIVATE)
        public = deploy("Copy public", region="westeurope")

        assert "Private network" in refusal_of(primary, public, platform_admin)


class TestWhoPays:
    def test_a_dedicated_deployment_falls_back_to_its_department_s_own(self, deploy, finance, platform_admin):
        primary = deploy("Copy assistant")
        finance_one = deploy("Finance copy", department=finance, region="westeurope")

        assert refusal_of(primary, finance_one, platform_admin) == (
            "Finance copy cannot be a fallback. Who pays: Marketing pays for Copy assistant's calls, "
            "so its fallback must be one of Marketing's own deployments or a shared service granted to it."
        )

    def test_or_to_a_shared_service_granted_to_its_department(self, deploy, marketing, platform_admin):
        central = make_department(name="Central IT")
        primary = deploy("Copy assistant")
        shared = deploy("Company assistant", department=central, region="westeurope", shared_with=[marketing])

        fallbacks_set(deployment=primary, fallbacks=[shared], actor=platform_admin)

        assert fallback_chain(primary) == [shared]

    def test_a_shared_service_needs_a_fallback_every_department_may_use(
        self, deploy, marketing, finance, platform_admin
    ):
        central = make_department(name="Central IT")
        primary = deploy("Company assistant", department=central, shared_with=[marketing, finance])
        half = deploy("Company backup", department=central, region="westeurope", shared_with=[marketing])
        dedicated = deploy("Central copy", department=central, region="westeurope")

        assert "Who pays: Finance uses Company assistant but has no grant on the fallback" in refusal_of(
            primary, half, platform_admin
        )
        assert "a dedicated deployment would bill one department" in refusal_of(
            primary, dedicated, platform_admin
        )
        AccessGrant.objects.create(deployment=half, department=finance)
        fallbacks_set(deployment=primary, fallbacks=[half], actor=platform_admin)
        assert fallback_chain(primary) == [half]

    def test_a_grant_taken_away_later_takes_the_fallback_out_of_the_chain(
        self, deploy, marketing, finance, platform_admin
    ):
        central = make_department(name="Central IT")
        primary = deploy("Company assistant", department=central, shared_with=[marketing, finance])
        backup = deploy(
            "Company backup", department=central, region="westeurope", shared_with=[marketing, finance]
        )
        fallbacks_set(deployment=primary, fallbacks=[backup], actor=platform_admin)
        assert fallback_chain(primary) == [backup]

        AccessGrant.objects.filter(deployment=backup, department=finance).delete()

        assert fallback_chain(primary) == []


class TestChain:
    def test_in_the_order_set_and_only_active_ones(self, deploy, platform_admin):
        primary = deploy("Copy assistant")
        first = deploy("Copy West Europe", region="westeurope")
        second = deploy("Copy France", region="francecentral")
        fallbacks_set(deployment=primary, fallbacks=[second, first], actor=platform_admin)
        assert fallback_chain(primary) == [second, first]

        second.state = State.DECOMMISSIONING
        second.save(update_fields=["state"])

        assert fallback_chain(primary) == [first]
        assert fallbacks_of(primary) == [second, first]  # still listed on the page

    def test_one_query_then_remembered_until_something_changes(
        self, deploy, platform_admin, django_assert_num_queries
    ):
        primary = deploy("Copy assistant")
        backup = deploy("Copy West Europe", region="westeurope")
        fallbacks_set(deployment=primary, fallbacks=[backup], actor=platform_admin)

        with django_assert_num_queries(1):
            assert fallback_chain(primary) == [backup]
        with django_assert_num_queries(0):
            chain = fallback_chain(primary)
        assert chain[0].account is None or chain[0].account.endpoint  # the account came with it

    def test_a_deployment_without_fallbacks_has_an_empty_chain(self, deploy):
        assert fallback_chain(deploy("Copy assistant")) == []


class TestSetting:
    def test_only_platform_admins(self, deploy, marketing_lead):
        primary = deploy("Copy assistant")
        backup = deploy("Copy West Europe", region="westeurope")

        assert refusal_of(primary, backup, marketing_lead) == "Only platform admins set fallbacks."

    def test_audited_with_the_chain_before_and_after(self, deploy, platform_admin):
        primary = deploy("Copy assistant")
        backup = deploy("Copy West Europe", region="westeurope")

        fallbacks_set(deployment=primary, fallbacks=[backup], actor=platform_admin)
        fallbacks_set(deployment=primary, fallbacks=[backup], actor=platform_admin)  # no change
        fallbacks_set(deployment=primary, fallbacks=[], actor=platform_admin)

        events = AuditEvent.objects.filter(verb="deployment.fallbacks_set", object_id=str(primary.pk))
        assert [(e.before, e.after, e.actor) for e in events.order_by("pk")] == [
            ({"fallbacks": []}, {"fallbacks": [backup.gateway_name]}, platform_admin),
            ({"fallbacks": [backup.gateway_name]}, {"fallbacks": []}, platform_admin),
        ]
        assert fallback_chain(primary) == []

    def test_one_refused_fallback_changes_nothing(self, deploy, platform_admin):
        primary = deploy("Copy assistant")
        good = deploy("Copy West Europe", region="westeurope")
        bad = deploy("Copy East US", region="eastus2")
        fallbacks_set(deployment=primary, fallbacks=[good], actor=platform_admin)

        with pytest.raises(FallbackRefused, match="Copy East US cannot be a fallback"):
            fallbacks_set(deployment=primary, fallbacks=[good, bad], actor=platform_admin)

        assert fallbacks_of(primary) == [good]

    def test_bad_lists_are_refused(self, deploy, platform_admin):
        primary = deploy("Copy assistant")
        backups = [deploy(f"Copy {n}", region="westeurope") for n in range(4)]

        with pytest.raises(FallbackRefused, match="At most 3 fallbacks"):
            fallbacks_set(deployment=primary, fallbacks=backups, actor=platform_admin)
        with pytest.raises(FallbackRefused, match="listed twice"):
            fallbacks_set(deployment=primary, fallbacks=[backups[0], backups[0]], actor=platform_admin)
        with pytest.raises(FallbackRefused, match="its own fallback"):
            fallbacks_set(deployment=primary, fallbacks=[primary], actor=platform_admin)
        backups[1].state = State.DECOMMISSIONED
        backups[1].save()
        with pytest.raises(FallbackRefused, match="Live: Copy 1 is decommissioned"):
            fallbacks_set(deployment=primary, fallbacks=[backups[1]], actor=platform_admin)

    def test_candidates_explain_each_refusal(self, deploy):
        primary = deploy("Copy assistant")
        good = deploy("Copy West Europe", region="westeurope")
        bad = deploy("Copy East US", region="eastus2")
        deploy("Mini", model_name="gpt-4o-mini")  # another model: not a candidate at all

        candidates = fallback_candidates(primary)

        assert [(c.deployment, c.eligible) for c in candidates] == [(good, True), (bad, False)]
        assert candidates[1].refusal.startswith("Same data zone")
