from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    label = "approvals"
    verbose_name = "Requests and approvals"

    def ready(self) -> None:
        from approvals import receivers  # noqa: F401  (follows provisioning runs)
