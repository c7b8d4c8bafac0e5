"""A property-based run of the whole OpenAPI document (schemathesis) against the live test server,
over the demo data, as each demo role with a personal access token and as nobody: valid and
invalid input alike, no server error and every answer valid against the document (status,
content type, headers, body).

Schemathesis's Hypothesis strategies are driven from a plain test here rather than through its
pytest plugin, whose lazy schemas read a private attribute that pytest 9 no longer has."""

import pytest
import schemathesis
from django.core.management import call_command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok

from api.tokens import access_token_create
from org.models import User
from portal.asgi import application
from tests.servers import ThreadedServer

# The demo's people (org/demo.py), one for each role, and nobody.
DEMO_ROLES = {
    "admin": "admin@example.com",
    "finance": "fiona@example.com",
    "security": "sam@example.com",
    "lead": "lena@example.com",
    "member": "mark@example.com",
}
ROLES = [*DEMO_ROLES, "anonymous"]
# A cursor is any string to the document, but only one the list gave out (signed) is accepted: a
# made-up one is refused with a 400 problem, which schema-valid input may get on the lists.
# Each call carries its role's own bearer token, so schemathesis does not make up an Authorization
# header: a mutated one would be replaced on the wire, and the check would then blame the answer to
# a request that was valid for a header the server never saw.
CONFIG = SchemathesisConfig.from_dict(
    {
        "generation": {"with-security-parameters": False},
        "operations": [
            {
                "include-path-regex": "^/api/v1/",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]
                    }
                },
            }
        ],
    }
)


@pytest.fixture
def api_server(transactional_db, settings, tmp_path):
    """The demo data (departments, people in every role, deployments, requests in every state, keys,
    a month of usage, audit events) behind a live server, and a token for each demo role."""
    settings.DEBUG = True
    settings.DEMO_API_KEY_FILE = tmp_path / "demo-api-key"
    call_command("seed_demo")
    tokens = {
        role: access_token_create(user=User.objects.get(email=email), name="Schema run", actor=None)[1]
        for role, email in DEMO_ROLES.items()
    }
    with ThreadedServer(application) as server:
        yield server.url, tokens


def takes_input(operation) -> bool:
    parts = (operation.path_parameters, operation.query, operation.headers, operation.cookies, operation.body)
    return any(any(True for _ in part) for part in parts)


# Examples per operation and mode: every operation gets its own run, so one with many parameters
# does not take the examples of the others.
EXAMPLES = 20


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_answers_within_the_document(api_server, mode, settings):
    settings.API_REQUESTS_PER_MINUTE = 1_000_000  # the run calls far faster than a script would
    url, tokens = api_server
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", config=CONFIG)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), [result for result in results if not isinstance(result, Ok)]

    if mode is GenerationMode.NEGATIVE:
        # An operation that takes nothing (`GET /me`) has no input to get wrong.
        operations = [operation for operation in operations if takes_input(operation)]
        assert len(operations) > len(results) / 2

    for operation in operations:

        @given(case=operation.as_strategy(mode))
        @hypothesis_settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def each_role_calls(case):
            for role in ROLES:
                headers = {"Authorization": f"Bearer {tokens[role]}"} if role in tokens else {}
                case.call_and_validate(base_url=url, headers=headers)

        each_role_calls()
