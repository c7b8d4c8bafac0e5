from decimal import Decimal

import pytest

from approvals.models import ApprovalPolicy
from org.models import Membership
from provisioning.models import LandingZone
from tests.factories import make_landing_zone, make_offer, make_user


@pytest.fixture
def zone(db) -> LandingZone:
    """Central IT's shared landing zone, where departments without their own subscription deploy."""
    return make_landing_zone(name="Central", slug="central", allowed_regions=["swedencentral", "eastus2"])


@pytest.fixture
def offers(zone):
    """gpt-4o-mini (GlobalStandard) and gpt-4o (GlobalStandard, ProvisionedManaged) in Sweden
    Central, 100K TPM / 100 PTU of quota left; East US 2 offers only gpt-4o-mini."""
    subscription = zone.subscription_id
    return [
        make_offer(subscription_id=subscription),
        make_offer(model_name="gpt-4o", model_version="2024-11-20", subscription_id=subscription),
        make_offer(
            model_name="gpt-4o",
            model_version="2024-11-20",
            sku="ProvisionedManaged",
            minimum=15,
            step=5,
            subscription_id=subscription,
        ),
        make_offer(region="eastus2", subscription_id=subscription),
    ]


@pytest.fixture
def policy(db) -> ApprovalPolicy:
    policy = ApprovalPolicy.current()
    policy.auto_approve_max_capacity = 20
    policy.finance_cost_threshold = Decimal("1000.00")
    policy.save()
    return policy


@pytest.fixture
def hr_lead(db, finance):
    from tests.factories import make_department

    hr = make_department(name="HR", cost_center="CC-4100")
    return make_user(email="hr-lead@example.com", department=hr, role=Membership.Role.LEAD)
