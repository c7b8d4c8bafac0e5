from typing import Any

from django.apps import apps
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from approvals.demo import seed_requests
from gateway.demo import USAGE_DAYS, demo_key_file, seed_demo_api_key, seed_demo_api_usage
from grounding.demo import seed_grounding
from org.demo import DEMO_PASSWORD, DEPARTMENTS, USERS, refuse_outside_development, seed_organisation
from provisioning.demo import seed_estate


class Command(BaseCommand):
    help = (
        "Load the demo organisation (departments, sign-ins), Azure estate (landing zones and the "
        "shared Company assistant, provisioned through the real path by the worker), requests in "
        "every state and Marketing's API key with its calls. Development only (DEBUG=true). Safe to "
        "run again: it changes or deletes only what it made."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        refuse_outside_development()
        with transaction.atomic():
            departments = seed_organisation()
            assistant = seed_estate(departments)
            requests = seed_requests(departments)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo organisation ready: {len(DEPARTMENTS)} departments, {len(USERS)} sign-ins "
                f"(password {DEMO_PASSWORD}). {assistant.display_name}: {assistant.get_state_display()}. "
                f"{requests or 'No new'} demo requests."
            )
        )
        # By name: the cost reports sit above provisioning and add their demo usage themselves.
        if apps.is_installed("reports"):
            call_command("seed_demo_usage", stdout=self.stdout)
        # After the usage above, which replaces every demo usage record, the key's calls too.
        self._seed_api_key()
        # After the usage, which makes the Campaign writer.
        grounded = seed_grounding()
        if grounded:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo grounding: {'; '.join(grounded)} (the worker reads the documents when it starts)."
                )
            )

    def _seed_api_key(self) -> None:
        made = seed_demo_api_key()
        if made is None:
            self.stdout.write("No demo API key: the demo's Marketing or Company assistant is missing.")
            return
        key, _ = made
        calls = seed_demo_api_usage(key)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo API key “{key.name}” ({key.prefix}…) for {key.department.name}, {calls} API calls "
                f"over {USAGE_DAYS} days; the whole key is in {demo_key_file()}."
            )
        )
