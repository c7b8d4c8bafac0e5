# Usage records and rollups move to the money app. Their tables stay where they are here and
# are renamed by money's 0002, which takes them over: this only forgets them in chat's state.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_admission_and_history_off"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="departmentusagerollup",
                    name="department",
                ),
                migrations.RemoveField(
                    model_name="departmentusagerollup",
                    name="deployment",
                ),
                migrations.RemoveField(
                    model_name="monthlypersonrollup",
                    name="department",
                ),
                migrations.RemoveField(
                    model_name="monthlyusagerollup",
                    name="department",
                ),
                migrations.RemoveField(
                    model_name="monthlyusagerollup",
                    name="deployment",
                ),
                migrations.RemoveField(
                    model_name="usagerecord",
                    name="conversation",
                ),
                migrations.RemoveField(
                    model_name="usagerecord",
                    name="department",
                ),
                migrations.RemoveField(
                    model_name="usagerecord",
                    name="deployment",
                ),
                migrations.RemoveField(
                    model_name="usagerecord",
                    name="price",
                ),
                migrations.RemoveField(
                    model_name="usagerecord",
                    name="user",
                ),
                migrations.RemoveField(
                    model_name="usagerollup",
                    name="department",
                ),
                migrations.RemoveField(
                    model_name="usagerollup",
                    name="deployment",
                ),
                migrations.DeleteModel(
                    name="DailyDeploymentRollup",
                ),
                migrations.DeleteModel(
                    name="DepartmentUsageRollup",
                ),
                migrations.DeleteModel(
                    name="MonthlyPersonRollup",
                ),
                migrations.DeleteModel(
                    name="MonthlyUsageRollup",
                ),
                migrations.DeleteModel(
                    name="UsageRecord",
                ),
                migrations.DeleteModel(
                    name="UsageRollup",
                ),
            ],
            database_operations=[],
        ),
    ]
