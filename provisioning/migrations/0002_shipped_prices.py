from django.db import migrations


def load_shipped_prices(apps, schema_editor):
    # Imported here, not at the top: the loader takes the historical Price model as a parameter,
    # so the command and this migration share one copy of the logic.
    from provisioning.catalog import prices_load_shipped

    prices_load_shipped(price_model=apps.get_model("provisioning", "Price"))


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0001_initial"),
    ]

    operations = [
        # Reversing keeps the rows: admins may have edited them, and usage was priced with them.
        migrations.RunPython(load_shipped_prices, migrations.RunPython.noop),
    ]
