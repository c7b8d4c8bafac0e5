import os

import pytest
from django.test import Client

from chat.turns import forget_model_limits
from money.admission import forget_known_ledgers
from money.prices import prices_changed
from org.models import Department, Membership, PlatformGroup, User
from portal.celery import app as celery_app
from tests.factories import make_department, make_user

pytest_plugins = ["tests.emulator.fixtures", "tests.workers", "tests.grounding.backend"]


@pytest.fixture
def marketing(db) -> Department:
    return make_department(name="Marketing", cost_center="CC-2100")


@pytest.fixture
def finance(db) -> Department:
    return make_department(name="Finance", cost_center="CC-3100")


@pytest.fixture
def marketing_lead(marketing) -> User:
    return make_user(email="lead@example.com", department=marketing, role=Membership.Role.LEAD)


@pytest.fixture
def marketing_member(marketing) -> User:
    return make_user(email="member@example.com", department=marketing)


@pytest.fixture
def finance_lead(finance) -> User:
    return make_user(email="finance-lead@example.com", department=finance, role=Membership.Role.LEAD)


@pytest.fixture
def platform_admin(db) -> User:
    return make_user(email="platform@example.com", platform_group=PlatformGroup.ADMINS)


@pytest.fixture
def finance_approver(db) -> User:
    return make_user(email="approver@example.com", platform_group=PlatformGroup.FINANCE)


@pytest.fixture
def client_for():
    """A test client signed in as the given user."""

    def signed_in(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return signed_in


@pytest.fixture(autouse=True, scope="session")
def _tasks_stay_in_the_test_process():
    """Tasks that the code under test enqueues must not reach the development broker, where a
    `make run` worker would pick them up: the suite sends them to an in-memory broker. (Celery
    reads CELERY_BROKER_URL from the environment before its configuration.) Tests that need a
    real broker and worker set their own."""
    previous = os.environ.get("CELERY_BROKER_URL")
    os.environ["CELERY_BROKER_URL"] = "memory://"
    celery_app.conf.update(broker_url="memory://")
    yield
    if previous is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = previous


@pytest.fixture(autouse=True)
def _prices_read_afresh():
    # The chat remembers prices and models' limits in the process (money.prices, chat.turns), and
    # admission which money ledgers exist (money.admission): a test's rows end with its transaction.
    prices_changed()
    forget_model_limits()
    forget_known_ledgers()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Production-strength hashing is slow on purpose; tests need none of its strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_collection_modifyitems(config, items):
    # Browser tests last: Playwright keeps an event loop running in the main thread until the
    # session ends, and Django takes any later ORM call for one made from async code.
    items.sort(key=lambda item: "/e2e/" in str(item.path))
