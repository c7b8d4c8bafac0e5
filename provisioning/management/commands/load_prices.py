from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from provisioning.catalog import PRICES_FILE, prices_load_shipped


class Command(BaseCommand):
    help = (
        "Load the shipped price table (provisioning/data/prices.json) into Prices. Safe to run again: "
        "a price that is already there is updated only where the file differs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file",
            type=Path,
            default=PRICES_FILE,
            help="A price table in the same format (default: shipped).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        loaded = prices_load_shipped(path=path)
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {loaded.total} prices valid from {loaded.valid_from} from {path}: "
                f"{loaded.created} created, {loaded.updated} updated, {loaded.unchanged} unchanged."
            )
        )
