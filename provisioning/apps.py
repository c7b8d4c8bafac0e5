from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    """Azure: landing zones, accounts, deployments, catalog, the Azure client and emulator."""

    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self) -> None:
        from provisioning import azure  # noqa: F401  (registers its deploy check)
        from provisioning.fallbacks import connect_receivers

        connect_receivers()
