# Usage records and rollups move here from the chat app, with their data: the models are taken
# over in state on their existing tables (chat_*), then the tables are renamed (money_*) and the
# content types follow, so permissions and admin history stay attached.

from decimal import Decimal

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

MOVED = [
    "usagerecord",
    "usagerollup",
    "departmentusagerollup",
    "dailydeploymentrollup",
    "monthlyusagerollup",
    "monthlypersonrollup",
]


def move_content_types(apps, old_label, new_label):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if ContentType.objects.filter(app_label=new_label, model=model).exists():
            continue  # made already (a database built from an empty one): nothing points at the old
        ContentType.objects.filter(app_label=old_label, model=model).update(app_label=new_label)


def content_types_follow(apps, schema_editor):
    move_content_types(apps, "chat", "money")


def content_types_go_back(apps, schema_editor):
    move_content_types(apps, "money", "chat")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("chat", "0004_usage_moves_to_money"),
        ("money", "0001_initial"),
        ("org", "0004_names_on_one_line_and_column_limits"),
        ("provisioning", "0006_names_on_one_line_regions_and_column_limits"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DailyDeploymentRollup",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("requests", models.PositiveIntegerField(default=0)),
                        ("input_tokens", models.BigIntegerField(default=0)),
                        ("cached_input_tokens", models.BigIntegerField(default=0)),
                        ("output_tokens", models.BigIntegerField(default=0)),
                        (
                            "cost",
                            models.DecimalField(
                                decimal_places=10,
                                default=Decimal("0"),
                                help_text="USD, unrounded.",
                                max_digits=20,
                            ),
                        ),
                        ("day", models.DateField()),
                        (
                            "deployment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="provisioning.modeldeployment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "chat_dailydeploymentrollup",
                        "indexes": [
                            models.Index(fields=["deployment", "day"], name="daily_rollup_by_deployment")
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("day", "deployment"), name="one_daily_deployment_rollup_per_key"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="DepartmentUsageRollup",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("requests", models.PositiveIntegerField(default=0)),
                        ("input_tokens", models.BigIntegerField(default=0)),
                        ("cached_input_tokens", models.BigIntegerField(default=0)),
                        ("output_tokens", models.BigIntegerField(default=0)),
                        (
                            "cost",
                            models.DecimalField(
                                decimal_places=10,
                                default=Decimal("0"),
                                help_text="USD, unrounded.",
                                max_digits=20,
                            ),
                        ),
                        ("day", models.DateField()),
                        (
                            "department",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="org.department",
                            ),
                        ),
                        (
                            "deployment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="provisioning.modeldeployment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "chat_departmentusagerollup",
                        "indexes": [
                            models.Index(fields=["deployment", "day"], name="dept_rollup_by_deployment_day"),
                            models.Index(fields=["department", "day"], name="dept_rollup_by_department_day"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("day", "department", "deployment"),
                                name="one_department_rollup_per_key",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="MonthlyPersonRollup",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("requests", models.PositiveIntegerField(default=0)),
                        ("input_tokens", models.BigIntegerField(default=0)),
                        ("cached_input_tokens", models.BigIntegerField(default=0)),
                        ("output_tokens", models.BigIntegerField(default=0)),
                        (
                            "cost",
                            models.DecimalField(
                                decimal_places=10,
                                default=Decimal("0"),
                                help_text="USD, unrounded.",
                                max_digits=20,
                            ),
                        ),
                        ("month", models.DateField(help_text="The first day of the month.")),
                        ("user_key", models.PositiveIntegerField(default=0)),
                        (
                            "department",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="org.department",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "chat_monthlypersonrollup",
                        "indexes": [
                            models.Index(fields=["department", "month"], name="person_rollup_by_department")
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("month", "department", "user_key"),
                                name="one_monthly_person_rollup_per_key",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="MonthlyUsageRollup",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("requests", models.PositiveIntegerField(default=0)),
                        ("input_tokens", models.BigIntegerField(default=0)),
                        ("cached_input_tokens", models.BigIntegerField(default=0)),
                        ("output_tokens", models.BigIntegerField(default=0)),
                        (
                            "cost",
                            models.DecimalField(
                                decimal_places=10,
                                default=Decimal("0"),
                                help_text="USD, unrounded.",
                                max_digits=20,
                            ),
                        ),
                        ("month", models.DateField(help_text="The first day of the month.")),
                        (
                            "department",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="org.department",
                            ),
                        ),
                        (
                            "deployment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="provisioning.modeldeployment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "chat_monthlyusagerollup",
                        "indexes": [
                            models.Index(fields=["department", "month"], name="monthly_rollup_by_department"),
                            models.Index(fields=["deployment", "month"], name="monthly_rollup_by_deployment"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("month", "department", "deployment"),
                                name="one_monthly_rollup_per_key",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="UsageRecord",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("input_tokens", models.PositiveIntegerField()),
                        ("cached_input_tokens", models.PositiveIntegerField(default=0)),
                        ("output_tokens", models.PositiveIntegerField()),
                        (
                            "cost",
                            models.DecimalField(
                                decimal_places=10, help_text="USD, unrounded.", max_digits=16
                            ),
                        ),
                        (
                            "source",
                            models.CharField(
                                choices=[("chat", "Chat"), ("api", "API")], default="chat", max_length=10
                            ),
                        ),
                        ("created_at", models.DateTimeField(db_index=True)),
                        (
                            "reservation_id",
                            models.UUIDField(blank=True, editable=False, null=True, unique=True),
                        ),
                        (
                            "estimated",
                            models.BooleanField(
                                default=False,
                                help_text="Azure's count never arrived (the call broke off): tokens are an estimate.",
                            ),
                        ),
                        (
                            "conversation",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="usage_records",
                                to="chat.conversation",
                            ),
                        ),
                        (
                            "department",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="usage_records",
                                to="org.department",
                            ),
                        ),
                        (
                            "deployment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="usage_records",
                                to="provisioning.modeldeployment",
                            ),
                        ),
                        (
                            "price",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="usage_records",
                                to="provisioning.price",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="usage_records",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "chat_usagerecord",
                        "ordering": ["-created_at"],
                        "indexes": [
                            models.Index(fields=["department", "created_at"], name="usage_by_department_time")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="UsageRollup",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("requests", models.PositiveIntegerField(default=0)),
                        ("input_tokens", models.BigIntegerField(default=0)),
                        ("cached_input_tokens", models.BigIntegerField(default=0)),
                        ("output_tokens", models.BigIntegerField(default=0)),
                        (
                            "cost",
                            models.DecimalField(
                                decimal_places=10,
                                default=Decimal("0"),
                                help_text="USD, unrounded.",
                                max_digits=20,
                            ),
                        ),
                        ("day", models.DateField()),
                        ("user_key", models.PositiveIntegerField(default=0)),
                        (
                            "department",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="org.department",
                            ),
                        ),
                        (
                            "deployment",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="provisioning.modeldeployment",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "chat_usagerollup",
                        "indexes": [
                            models.Index(fields=["department", "day"], name="rollup_by_department_day"),
                            models.Index(fields=["deployment", "day"], name="rollup_by_deployment_day"),
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("day", "department", "deployment", "user_key"),
                                name="one_usage_rollup_per_key",
                            )
                        ],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="dailydeploymentrollup", table=None),
        migrations.AlterModelTable(name="departmentusagerollup", table=None),
        migrations.AlterModelTable(name="monthlypersonrollup", table=None),
        migrations.AlterModelTable(name="monthlyusagerollup", table=None),
        migrations.AlterModelTable(name="usagerecord", table=None),
        migrations.AlterModelTable(name="usagerollup", table=None),
        migrations.RunPython(content_types_follow, content_types_go_back),
    ]
