from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.tokens import DEFAULT_DAYS, MAX_DAYS, AccessTokenRefused, access_token_create
from org.models import User


class Command(BaseCommand):
    help = (
        "Create a personal access token for the automation API (/api/v1/) and print it on the last "
        "line (the only time it is shown; scripts read that line). It acts with the person's roles."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="The person's email, e.g. lena@example.com.")
        parser.add_argument("--name", required=True, help="The script or tool that uses the token.")
        parser.add_argument(
            "--days",
            type=int,
            default=DEFAULT_DAYS,
            help=f"Lifetime in days, 1 to {MAX_DAYS} (default {DEFAULT_DAYS}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["user"]).first()
        if user is None:
            raise CommandError(f"No person with the email {options['user']!r}.")
        try:
            token, raw = access_token_create(
                user=user, name=options["name"], expires_in_days=options["days"], actor=None
            )
        except AccessTokenRefused as refusal:
            raise CommandError(str(refusal)) from None
        self.stdout.write(
            f"Access token “{token.name}” for {user.email}, expires {token.expires_at:%Y-%m-%d}. "
            "It is shown once; keep it in a secret store:"
        )
        self.stdout.write(raw)
