# The caller rollup arrived empty (0003): the usage already metered goes into it here, as
# `rebuild_usage_rollups` would put it, so the cost pages' chat and API split covers the months
# before the gateway too (all chat, or API calls without a key).

from django.db import migrations
from django.db.models import Count, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth


def rollups_from_records(apps, schema_editor):
    UsageRecord = apps.get_model("money", "UsageRecord")
    MonthlyCallerRollup = apps.get_model("money", "MonthlyCallerRollup")
    database = schema_editor.connection.alias
    grouped = (
        UsageRecord.objects.using(database)
        .order_by()
        .annotate(
            rollup_month=TruncMonth(TruncDate("created_at")),
            rollup_api_key=Coalesce("api_key_id", Value(0)),
            rollup_principal=Coalesce("principal_id", Value(0)),
        )
        .values(
            "rollup_month", "department_id", "deployment_id", "source", "rollup_api_key", "rollup_principal"
        )
        .annotate(
            rollup_requests=Count("id"),
            rollup_input=Sum("input_tokens"),
            rollup_cached=Sum("cached_input_tokens"),
            rollup_output=Sum("output_tokens"),
            rollup_cost=Sum("cost"),
        )
    )
    MonthlyCallerRollup.objects.using(database).all().delete()
    MonthlyCallerRollup.objects.using(database).bulk_create(
        (
            MonthlyCallerRollup(
                month=row["rollup_month"],
                department_id=row["department_id"],
                deployment_id=row["deployment_id"],
                source=row["source"],
                api_key_key=row["rollup_api_key"],
                principal_key=row["rollup_principal"],
                requests=row["rollup_requests"],
                input_tokens=row["rollup_input"],
                cached_input_tokens=row["rollup_cached"],
                output_tokens=row["rollup_output"],
                cost=row["rollup_cost"],
            )
            for row in grouped.iterator()
        ),
        batch_size=1000,
    )


def rollups_cleared(apps, schema_editor):
    apps.get_model("money", "MonthlyCallerRollup").objects.using(schema_editor.connection.alias).delete()


class Migration(migrations.Migration):
    dependencies = [("money", "0003_gateway_callers")]

    operations = [migrations.RunPython(rollups_from_records, rollups_cleared)]
