"""What provisioning refuses, as named exceptions: the contract with the layers above it.

Approvals hands an approved request over to the engine and fails the request with the refusal's
message; the message is written for the person who asked.
"""


class ProvisioningRefused(Exception):
    """The engine cannot start this run (a capacity of 0, a deployment that is not active); the
    message says why, for the requester to read."""
