from django.db import migrations


def create_policy(apps, schema_editor):
    # The policy is one row admins edit; it exists from the start so the admin page shows it.
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    ApprovalPolicy.objects.get_or_create(
        pk=1, defaults={"auto_approve_skus": ["Standard", "GlobalStandard", "DataZoneStandard"]}
    )


class Migration(migrations.Migration):
    dependencies = [("approvals", "0001_initial")]

    operations = [migrations.RunPython(create_policy, migrations.RunPython.noop)]
