"""The demo's API key and its calls: one Marketing key for the shared Company assistant, which
`make run` prints beside the demo sign-ins, and a month of that key's calls so the cost pages show
API usage.

A key is shown once and only its hash is stored, so the demo keeps the key itself in a file under
var/ (never committed; `DEMO_API_KEY_FILE`). Each run reuses the key the file holds while it still
works; when the file is gone, or holds a key that no longer works (another database, expired,
revoked), the old demo key is revoked and a new one made and written there."""

import os
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from gateway.keys import api_key_create, api_key_revoke
from gateway.models import ApiKey
from gateway.secrets import key_hash, looks_like_key
from money.models import UsageRecord
from money.prices import PriceBook, usage_cost
from money.usage import usage_rollups_rebuild
from org.demo import demo_rows, demo_rows_mark
from org.models import DemoRecord, Department
from provisioning.models import ModelDeployment

DEMO_KEY_DEPARTMENT = "marketing"
DEMO_KEY_NAME = "Marketing website assistant"
DEMO_KEY_DEPLOYMENT = "company-assistant"
DEMO_KEY_DAYS = 365
USAGE_DAYS = 30
SEED = 19


def demo_key_file() -> Path:
    return Path(settings.DEMO_API_KEY_FILE)


def demo_api_key_read() -> str:
    """The demo key the file holds, or "" (no file, or something else in it)."""
    try:
        raw = demo_key_file().read_text().strip()
    except OSError:
        return ""
    return raw if looks_like_key(raw) else ""


def seed_demo_api_key(*, now: datetime | None = None) -> tuple[ApiKey, str] | None:
    """The demo key and its secret: the one in the file while it works, else a new one. None when
    the demo's Marketing or Company assistant is not there (nothing to make a key for)."""
    now = now or timezone.now()
    department = Department.objects.filter(slug=DEMO_KEY_DEPARTMENT).first()
    deployment = ModelDeployment.objects.live().filter(gateway_name=DEMO_KEY_DEPLOYMENT).first()
    if department is None or deployment is None:
        return None
    ours = demo_rows(ApiKey).filter(department=department, name=DEMO_KEY_NAME)
    raw = demo_api_key_read()
    if raw:
        key = ApiKey.objects.usable(now).filter(pk__in=ours.values("pk"), secret_hash=key_hash(raw)).first()
        if key is not None:
            return key, raw
    with transaction.atomic():
        for old in ours.filter(revoked_at__isnull=True):
            api_key_revoke(key=old, actor=None)
        key, raw = api_key_create(
            department=department,
            name=DEMO_KEY_NAME,
            deployments=[deployment],
            expires_in_days=DEMO_KEY_DAYS,
            actor=None,
        )
        demo_rows_mark([key])
    _write_key_file(raw)
    return key, raw


def _write_key_file(raw: str) -> None:
    path = demo_key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Readable by its owner only: it is a working key, if only for the demo.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(raw + "\n")


def seed_demo_api_usage(key: ApiKey, *, now: datetime | None = None) -> int:
    """A month of the demo key's calls (an application on the Company assistant: many small calls
    on weekdays, few at weekends), replacing those an earlier run made. Returns the records."""
    now = now or timezone.now()
    deployment = key.deployments.first()
    if deployment is None:
        return 0
    rng = random.Random(SEED)  # noqa: S311  (demo figures, not security)
    prices = PriceBook(ModelDeployment.Sku.values)
    last_day = timezone.localdate(now)
    first_day = last_day - timedelta(days=USAGE_DAYS - 1)
    with transaction.atomic():
        _delete_demo_api_usage()
        records: list[UsageRecord] = []
        for offset in range(USAGE_DAYS):
            day = first_day + timedelta(days=offset)
            calls = rng.randint(2, 6) if day.weekday() >= 5 else rng.randint(25, 45)
            records.extend(_call(key, deployment, day, rng, prices) for _ in range(calls))
        records = [record for record in records if record.created_at <= now]
        UsageRecord.objects.bulk_create(records, batch_size=2000)
        demo_rows_mark(records)
        if records:
            latest = max(record.created_at for record in records)
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=latest)
        usage_rollups_rebuild(first_day=first_day, last_day=last_day)
    return len(records)


def _delete_demo_api_usage() -> None:
    """The demo's API calls of an earlier run (the cost reports' seed may have removed them
    already), with the records that marked them as the demo's."""
    made = demo_rows(UsageRecord).filter(api_key__in=demo_rows(ApiKey))
    ids = list(made.values_list("pk", flat=True))
    if not ids:
        return
    UsageRecord.objects.filter(pk__in=ids).delete()
    DemoRecord.objects.filter(
        content_type=ContentType.objects.get_for_model(UsageRecord), object_id__in=ids
    ).delete()


def _call(
    key: ApiKey, deployment: ModelDeployment, day: date, rng: random.Random, prices: PriceBook
) -> UsageRecord:
    at = datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone()) + timedelta(
        seconds=rng.randint(6 * 3600, 22 * 3600)
    )
    input_tokens = rng.randint(300, 2_500)
    output_tokens = rng.randint(80, 700)
    cached = int(input_tokens * rng.choice([0, 0, 0.5]))
    cost, price = usage_cost(
        deployment=deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        at=at,
        prices=prices,
    )
    return UsageRecord(
        department=key.department,
        deployment=deployment,
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        cost=cost,
        price=price,
        source=UsageRecord.Source.API,
        api_key=key,
        created_at=at,
    )
