"""Ninety days of demo usage, so the cost pages show real-looking figures: a few people per
department chatting, each department's own assistant (provisioned through the real path like the
Company assistant), nightly batch jobs over the API (millions of tokens each, each department's
run by a service principal of its own), and central IT's provisioned (PTU) pipeline that sits
mostly idle; the last week of it also as the minute rollups the operations page reads. The same
seed gives the same figures; it
replaces the usage it made before, and only that (org.demo's records of what it made)."""

import math
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction
from django.utils import timezone

from calls.hours import call_hours_fold
from calls.latency import bucket_index
from calls.models import CallMinute
from gateway.models import ServicePrincipal
from money.models import UsageRecord
from money.prices import PriceBook, usage_cost
from money.usage import usage_rollups_rebuild
from org.demo import demo_rows_delete, demo_rows_mark
from org.models import Department, Membership, User
from provisioning.catalog import prices_load_shipped
from provisioning.models import LandingZone, ModelDeployment, Price
from provisioning.services import deployment_request_provisioning

DAYS = 90
SEED = 7
# The operations page looks back a week at most; a day more lets its week start on a full day.
CALL_MINUTE_DAYS = 8

# email, first name, last name, department slug
PEOPLE = [
    ("priya.shah@example.com", "Priya", "Shah", "marketing"),
    ("tom.berg@example.com", "Tom", "Berg", "marketing"),
    ("ines.costa@example.com", "Ines", "Costa", "marketing"),
    ("omar.haddad@example.com", "Omar", "Haddad", "finance"),
    ("julia.novak@example.com", "Julia", "Novak", "finance"),
    ("kofi.mensah@example.com", "Kofi", "Mensah", "hr"),
    ("sara.lind@example.com", "Sara", "Lind", "hr"),
    ("diego.ruiz@example.com", "Diego", "Ruiz", "sales"),
    ("mia.wagner@example.com", "Mia", "Wagner", "sales"),
    ("leo.martin@example.com", "Leo", "Martin", "sales"),
    ("nina.olsen@example.com", "Nina", "Olsen", "sales"),
    ("raj.patel@example.com", "Raj", "Patel", "central-it"),
    ("eva.klein@example.com", "Eva", "Klein", "central-it"),
]


@dataclass(frozen=True)
class DemoAssistant:
    department: str
    display_name: str
    name: str
    model_name: str
    model_version: str
    sku: str
    capacity: int
    zone: str
    chats_per_day: int  # on a weekday
    batch_jobs_per_day: int
    batch_tokens: int


ASSISTANTS = [
    DemoAssistant("marketing", "Campaign writer", "campaign-writer", "gpt-4o", "2024-11-20",
                  "GlobalStandard", 50, "marketing", 26, 6, 2_500_000),
    DemoAssistant("finance", "Report analyst", "report-analyst", "gpt-4.1", "2025-04-14",
                  "GlobalStandard", 30, "central", 14, 5, 3_000_000),
    DemoAssistant("hr", "Onboarding guide", "onboarding-guide", "gpt-4o", "2024-11-20",
                  "GlobalStandard", 20, "central", 12, 5, 2_500_000),
    DemoAssistant("sales", "Email drafter", "email-drafter", "gpt-4o", "2024-11-20",
                  "GlobalStandard", 50, "central", 34, 9, 2_500_000),
    DemoAssistant("central-it", "Document pipeline (PTU)", "document-pipeline", "gpt-4o", "2024-11-20",
                  "GlobalProvisionedManaged", 15, "central", 0, 2, 30_000),
]  # fmt: skip


def seed_usage(*, now: datetime | None = None) -> int:
    """Create the demo people and assistants and 90 days of their usage; returns the records."""
    now = now or timezone.now()
    if not Price.objects.exists():
        # A flushed database (tests) lost the prices the migration loaded; demo usage needs them.
        prices_load_shipped()
    rng = random.Random(SEED)  # noqa: S311  (demo figures, not security)
    prices = PriceBook(ModelDeployment.Sku.values)
    departments = {department.slug: department for department in Department.objects.all()}
    with transaction.atomic():
        assistants = _assistants(departments, now=now)
        usage = _DemoUsage(
            prices=prices,
            rng=rng,
            now=now,
            departments=departments,
            people=_people(departments),
            assistants=assistants,
            batch_principals=_batch_principals(assistants),
            company=ModelDeployment.objects.live().filter(display_name="Company assistant").first(),
        )
        # Only the usage an earlier run made: what people did on these deployments stays.
        demo_rows_delete(UsageRecord)
        records: list[UsageRecord] = []
        first_day = timezone.localdate(now) - timedelta(days=DAYS - 1)
        for offset in range(DAYS):
            day = first_day + timedelta(days=offset)
            # Weekends are quiet; use grows a little over the quarter.
            pace = (0.25 if day.weekday() >= 5 else 1.0) * (0.8 + 0.4 * offset / DAYS)
            records.extend(usage.of_day(day, pace))
        records = [record for record in records if record.created_at <= now]
        UsageRecord.objects.bulk_create(records, batch_size=2000)
        demo_rows_mark(records)
        demo_rows_delete(CallMinute)
        minutes = _call_minutes(records, now=now)
        CallMinute.objects.bulk_create(minutes, batch_size=2000)
        demo_rows_mark(minutes)
        call_hours_fold(now=now, since=now - timedelta(days=CALL_MINUTE_DAYS))
        usage_rollups_rebuild(first_day=first_day, last_day=timezone.localdate(now))
    return len(records)


@dataclass
class _DemoUsage:
    """What the demo days' calls are made of. The random draws come in a fixed order, so the same
    seed gives the same figures."""

    prices: PriceBook
    rng: random.Random
    now: datetime
    departments: dict[str, Department]
    people: dict[str, list[User]]
    assistants: dict[str, ModelDeployment]
    batch_principals: dict[str, ServicePrincipal]
    company: ModelDeployment | None

    def of_day(self, day: date, pace: float) -> list[UsageRecord]:
        rng = self.rng
        records: list[UsageRecord] = []
        for spec in ASSISTANTS:
            department = self.departments[spec.department]
            deployment = self.assistants[spec.department]
            staff = self.people[spec.department]
            for _ in range(_count(rng, spec.chats_per_day * pace)):
                records.append(self._call(deployment, department, rng.choice(staff), day, 1_500, 9_000, 0.3))
            for _ in range(_count(rng, spec.batch_jobs_per_day * pace)):
                size = spec.batch_tokens
                record = self._call(deployment, department, None, day, size // 2, size * 3 // 2, 0.1)
                record.principal = self.batch_principals[spec.department]
                records.append(record)
            if self.company is not None:
                for _ in range(_count(rng, 10 * pace)):
                    records.append(
                        self._call(self.company, department, rng.choice(staff), day, 800, 5_000, 0.35)
                    )
        return records

    def _call(
        self,
        deployment: ModelDeployment,
        department: Department,
        user: User | None,
        day: date,
        low: int,
        high: int,
        output_share: float,
    ) -> UsageRecord:
        """One call of `low` to `high` tokens, about `output_share` of them output."""
        rng = self.rng
        at = datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone()) + timedelta(
            seconds=rng.randint(7 * 3600, 19 * 3600)
        )
        tokens = rng.randint(low, high)
        output_tokens = int(tokens * output_share * rng.uniform(0.6, 1.4))
        input_tokens = tokens - output_tokens
        cached = int(input_tokens * rng.choice([0, 0, 0.2, 0.5]))
        cost, price = usage_cost(
            deployment=deployment,
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            output_tokens=output_tokens,
            at=at,
            prices=self.prices,
        )
        return UsageRecord(
            department=department,
            user=user,
            deployment=deployment,
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            output_tokens=output_tokens,
            cost=cost,
            price=price,
            source=UsageRecord.Source.CHAT if user else UsageRecord.Source.API,
            created_at=at,
        )


def _call_minutes(records: list[UsageRecord], *, now: datetime) -> list[CallMinute]:
    """The last days' calls as the minute rollups that real calls write: how long the first token
    and the whole answer took, and Azure's occasional 429 or error, drawn from a generator of their
    own so that the usage figures stay those of the seed."""
    rng = random.Random(SEED + 1)  # noqa: S311  (demo figures, not security)
    since = now - timedelta(days=CALL_MINUTE_DAYS)
    # A minute a person's own call already wrote (in `make run`) keeps its real figures.
    taken = set(
        CallMinute.objects.filter(minute__gte=since).values_list(
            "minute", "deployment", "department", "source"
        )
    )
    minutes: dict[tuple[datetime, int, int, str], CallMinute] = {}
    for record in records:
        if record.created_at < since:
            continue
        key = (
            record.created_at.replace(second=0, microsecond=0),
            record.deployment_id,
            record.department_id,
            record.source,
        )
        if key in taken:
            continue
        row = minutes.get(key)
        if row is None:
            row = minutes[key] = CallMinute(
                minute=key[0], deployment_id=key[1], department_id=key[2], source=key[3]
            )
        row.calls += 1
        # Answered after a retry; a provisioned deployment refuses only when full, as the demo's never is.
        if rng.random() < 0.03 and not record.deployment.is_provisioned_sku:
            row.throttled += 1
        if rng.random() < 0.005:
            row.upstream_errors += 1
            continue
        # Chat turns start answering in about half a second; long batch prompts take longer.
        first_token = rng.lognormvariate(math.log(450 if record.user_id else 1400), 0.5)
        # A batch job's millions of tokens are many answers; one is at most a few thousand tokens.
        answer = first_token + min(record.output_tokens, 4_000) * rng.uniform(6, 14)
        row.answered += 1
        row.input_tokens += record.input_tokens
        row.output_tokens += record.output_tokens
        row.first_token_ms[bucket_index(first_token)] += 1
        row.answer_ms[bucket_index(answer)] += 1
    return list(minutes.values())


def _count(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, mean * 0.2))) if mean else 0


def _people(departments: dict[str, Department]) -> dict[str, list[User]]:
    people: dict[str, list[User]] = {slug: [] for slug in departments}
    for membership in Membership.objects.select_related("user", "department"):
        people.setdefault(membership.department.slug, []).append(membership.user)
    for email, first_name, last_name, slug in PEOPLE:
        user, created = User.objects.get_or_create(
            email=email, defaults={"first_name": first_name, "last_name": last_name}
        )
        if created:
            # Demo colleagues who appear in the figures; nobody signs in as them.
            user.set_unusable_password()
            user.save(update_fields=["password"])
            demo_rows_mark([user])
        Membership.objects.get_or_create(user=user, department=departments[slug])
        if user not in people[slug]:
            people[slug].append(user)
    return people


def _assistants(departments: dict[str, Department], *, now: datetime) -> dict[str, ModelDeployment]:
    zones = {zone.slug: zone for zone in LandingZone.objects.all()}
    assistants = {}
    for spec in ASSISTANTS:
        deployment, created = ModelDeployment.objects.live().get_or_create(
            landing_zone=zones[spec.zone],
            region="swedencentral",
            name=spec.name,
            defaults={
                "department": departments[spec.department],
                "scope": ModelDeployment.Scope.DEDICATED,
                "display_name": spec.display_name,
                "model_name": spec.model_name,
                "model_version": spec.model_version,
                "sku": spec.sku,
                "capacity": spec.capacity,
            },
        )
        if created:
            # It has been running for the whole demo quarter (PTU hours accrue from here).
            ModelDeployment.objects.filter(pk=deployment.pk).update(created_at=now - timedelta(days=DAYS))
            deployment.refresh_from_db()
            deployment_request_provisioning(deployment=deployment)
        assistants[spec.department] = deployment
    return assistants


def _batch_principals(assistants: dict[str, ModelDeployment]) -> dict[str, ServicePrincipal]:
    """Each department's nightly batch job: a workload identity registered for the department,
    calling its own assistant with Entra ID tokens."""
    principals = {}
    for slug, assistant in assistants.items():
        principal, created = ServicePrincipal.objects.get_or_create(
            object_id=uuid.uuid5(uuid.NAMESPACE_URL, f"https://switchyard.example.com/demo/{slug}/batch"),
            defaults={
                "department": assistant.department,
                "name": f"{assistant.department.name} nightly batch",
            },
        )
        if created:
            principal.deployments.set([assistant])
            demo_rows_mark([principal])
        principals[slug] = principal
    return principals
