from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway.keys import DEFAULT_DAYS, MAX_DAYS, ApiKeyInvalid, ApiKeyRefused, api_key_create
from org.models import Department
from provisioning.models import ModelDeployment


class Command(BaseCommand):
    help = (
        "Create an API key for a department's applications and print it on the last line (the only "
        "time it is shown; scripts read that line). Keys for restricted data wait for approval."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--department", required=True, help="The department's slug, e.g. marketing.")
        parser.add_argument("--name", required=True, help="The application that uses the key.")
        parser.add_argument(
            "--deployment",
            action="append",
            required=True,
            dest="deployments",
            metavar="GATEWAY_NAME",
            help="A deployment the key may call, by gateway name (e.g. company-assistant); repeat for more.",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"Lifetime in days, 1 to {MAX_DAYS} (default {DEFAULT_DAYS}).",
        )
        parser.add_argument("--rpm", type=int, default=None, help="Requests per minute (default: no limit).")
        parser.add_argument("--tpm", type=int, default=None, help="Tokens per minute (default: no limit).")
        parser.add_argument(
            "--purpose",
            default="",
            help="For restricted data: what the application does with it (approvers read it).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        department = Department.objects.filter(slug=options["department"]).first()
        if department is None:
            known = (
                ", ".join(Department.objects.order_by("slug").values_list("slug", flat=True)) or "none yet"
            )
            raise CommandError(f"No department {options['department']!r}. Departments: {known}.")
        deployments = []
        for name in options["deployments"]:
            deployment = ModelDeployment.objects.live().filter(gateway_name=name).first()
            if deployment is None:
                raise CommandError(f"No deployment with the gateway name {name!r}.")
            deployments.append(deployment)
        try:
            key, raw = api_key_create(
                department=department,
                name=options["name"],
                deployments=deployments,
                requests_per_minute=options["rpm"],
                tokens_per_minute=options["tpm"],
                expires_in_days=options["days"],
                purpose=options["purpose"],
                actor=None,
            )
        except ApiKeyInvalid as invalid:
            raise CommandError(
                "The key was not created: "
                + " ".join(f"{field}: {' '.join(messages)}" for field, messages in invalid.errors.items())
            ) from invalid
        except ApiKeyRefused as refusal:
            raise CommandError(f"The key was not created: {refusal}") from refusal
        calls = ", ".join(d.gateway_name for d in deployments)
        self.stderr.write(
            f"Created “{key.name}” for {department.name} ({key.prefix}…), calling {calls}, "
            f"expiring {key.expires_at:%Y-%m-%d}."
            + (" It works once approved (restricted data)." if key.state == key.State.PENDING else "")
            + " The key is shown only now:",
            style_func=str,  # information, not an error: plain, not in the error colour
        )
        self.stdout.write(raw)
