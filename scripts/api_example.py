"""Marketing's lead asks for a deployment, a platform admin approves it, Switchyard provisions it
on Azure, and an application calls it through the gateway: the whole journey by script, through
the automation API (/api/v1/) and the openai SDK.

    export LEAD_TOKEN=...   # a personal access token of Marketing's lead (lena@example.com)
    export ADMIN_TOKEN=...  # one of a platform admin (admin@example.com)
    .venv/bin/python scripts/api_example.py [BASE_URL]
"""

import sys
import time
import uuid
from os import environ
from typing import Any

import requests
from openai import OpenAI

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"


def api(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def call(session: requests.Session, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    # A POST sent again with the same Idempotency-Key (after a timeout, say) is answered, never done, twice.
    headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {}
    response = session.request(method, f"{BASE}/api/v1{path}", json=body, headers=headers, timeout=30)
    if not response.ok:  # an RFC 9457 problem document
        problem = response.json()
        sys.exit(f"{method} {path}: {problem['title']}. {problem['detail']} {problem.get('errors') or ''}")
    return response.json()


lead, admin = api(environ["LEAD_TOKEN"]), api(environ["ADMIN_TOKEN"])

# 1. The lead drafts a dedicated deployment for Marketing and submits it.
draft = call(
    lead,
    "POST",
    "/requests",
    {
        "kind": "new_deployment",
        "department": "marketing",
        "display_name": "Newsletter writer",
        "purpose": "Drafts the monthly customer newsletter from the campaign brief.",
        "data_classification": "internal",
        "region": "swedencentral",
        "model_name": "gpt-4o-mini",
        "model_version": "2024-07-18",
        "sku": "GlobalStandard",
        "capacity": 20,
        "input_tokens_per_month": "30",
        "output_tokens_per_month": "10",
    },
)
request = call(lead, "POST", f"/requests/{draft['id']}/submit")
cost = request["estimated_monthly_cost"]
print(f"Request {request['id']}: {request['state_label']}, about {cost['amount']} {cost['currency']} a month")

# 2. 20K tokens a minute is more than the policy approves by itself: a platform admin decides.
if request["state"] == "submitted":
    request = call(admin, "POST", f"/requests/{request['id']}/approve", {"comment": "Approved by script."})
    print(f"Request {request['id']}: {request['state_label']}")

# 3. A Celery worker provisions it on Azure; the request follows the run to its end.
while request["state"] in ("approved", "provisioning"):
    time.sleep(2)
    request = call(lead, "GET", f"/requests/{request['id']}")
if request["state"] != "completed":
    sys.exit(f"Request {request['id']} ended {request['state']}: {request['status_message']}")
deployment = call(lead, "GET", f"/deployments/{request['deployment']}")
print(
    f"{deployment['display_name']} is {deployment['state']}: its gateway name is {deployment['gateway_name']}"
)

# 4. A key for Marketing's newsletter tool (shown this once), and a call through the gateway.
key = call(
    lead,
    "POST",
    "/departments/marketing/keys",
    {"name": f"Newsletter tool {draft['id']}", "deployments": [deployment["gateway_name"]]},
)
gateway = OpenAI(base_url=f"{BASE}/openai/v1", api_key=key["key"])
answer = gateway.chat.completions.create(
    model=deployment["gateway_name"],
    messages=[{"role": "user", "content": "A subject line for the spring newsletter, please."}],
)
print(f"{deployment['gateway_name']} says: {answer.choices[0].message.content}")
