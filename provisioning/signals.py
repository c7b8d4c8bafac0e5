"""What the provisioning engine tells the layers above it, without knowing them."""

from django.dispatch import Signal

# Sent after the commit that ends a run: the deployment became active, decommissioned or failed.
# Arguments: deployment_id, state.
deployment_run_finished = Signal()
