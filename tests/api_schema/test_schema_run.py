"""A property-based run of the whole OpenAPI document (schemathesis) against the live test server,
as each role with a personal access token and as nobody: valid and invalid input alike, no server
error and every answer valid against the document (status, content type, headers, body).

Schemathesis's Hypothesis strategies are driven from a plain test here rather than through its
pytest plugin, whose lazy schemas read a private attribute that pytest 9 no longer has."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from api.tokens import access_token_create
from org.models import Membership, PlatformGroup
from portal.asgi import application
from tests.factories import make_department, make_user
from tests.servers import ThreadedServer

ROLES = ["admin", "finance", "lead", "member", "anonymous"]
# A cursor is any string to the document, but only one the list gave out (signed) is accepted: a
# made-up one is refused with a 400 problem, which schema-valid input may get on the lists.
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-path-regex": "^/api/v1/",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]
                    }
                },
            }
        ]
    }
)


@pytest.fixture
def api_server(transactional_db):
    marketing = make_department(name="Marketing", cost_center="CC-2100")
    finance = make_department(name="Finance", cost_center="CC-3100")
    people = {
        "admin": make_user(email="admin@example.com", platform_group=PlatformGroup.ADMINS),
        "finance": make_user(email="fiona@example.com", platform_group=PlatformGroup.FINANCE),
        "lead": make_user(email="lena@example.com", department=marketing, role=Membership.Role.LEAD),
        "member": make_user(email="mark@example.com", department=marketing),
    }
    make_user(email="fred@example.com", department=finance)
    tokens = {
        role: access_token_create(user=person, name="Schema run", actor=None)[1]
        for role, person in people.items()
    }
    with ThreadedServer(application) as server:
        yield server.url, tokens


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_answers_within_the_document(api_server, mode, settings):
    settings.API_REQUESTS_PER_MINUTE = 100_000  # the run calls far faster than a script would
    url, tokens = api_server
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", config=CONFIG)

    @given(case=schema.as_strategy(mode))
    @hypothesis_settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def each_role_calls(case):
        for role in ROLES:
            headers = {"Authorization": f"Bearer {tokens[role]}"} if role in tokens else {}
            case.call_and_validate(base_url=url, headers=headers)

    each_role_calls()
