import pytest

from org.models import Department, Membership
from provisioning.models import DataClassification, ModelDeployment
from tests.factories import make_department, make_deployment, make_user


@pytest.fixture
def central_it(db) -> Department:
    return make_department(name="Central IT", slug="central-it", cost_center="CC-1000")


@pytest.fixture
def assistant(central_it, marketing, finance) -> ModelDeployment:
    """The shared Company assistant, granted to Marketing and Finance."""
    return make_deployment(
        department=central_it, display_name="Company assistant", shared_with=[marketing, finance]
    )


@pytest.fixture
def copywriter(marketing) -> ModelDeployment:
    """Marketing's own deployment."""
    return make_deployment(department=marketing, display_name="Campaign writer")


@pytest.fixture
def contracts(marketing) -> ModelDeployment:
    """Marketing's deployment for restricted data (signed customer contracts)."""
    deployment = make_deployment(department=marketing, display_name="Contract reader")
    deployment.data_classification = DataClassification.RESTRICTED
    deployment.save(update_fields=["data_classification"])
    return deployment


@pytest.fixture
def ledger(finance) -> ModelDeployment:
    """Finance's own deployment: not Marketing's to call."""
    return make_deployment(department=finance, display_name="Ledger analyst")


@pytest.fixture
def second_admin(db):
    from org.models import PlatformGroup

    return make_user(email="second-admin@example.com", first_name="Sam", platform_group=PlatformGroup.ADMINS)


@pytest.fixture
def marketing_co_lead(marketing):
    return make_user(email="co-lead@example.com", department=marketing, role=Membership.Role.LEAD)
