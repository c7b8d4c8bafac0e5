"""The Azure side of each provisioning step, through the official SDK, one module per step.

Every step first asks Azure what exists and then does only what is missing (resource names are
deterministic), so a repeated or interrupted step creates nothing twice. Long-running operations
are started without waiting (`polling=False`): a step answers `Wait` and the run looks again
later. A step runs with no database transaction open. It changes the run's records only in
memory (the operation's attempts, the deployment's account and drift), and the engine
(provisioning.services) saves them with the step's outcome if the run is still the same run;
what Azure says of an account is true whichever run asked, so the account's step saves that at
once, holding the account's claim (provisioning.claims).

- common: what every step answers, and how it waits for Azure's long-running operations
- preflight: what the region offers and its quota, asked before anything is created
- account, content_filter, data_access, deployment: the provisioning run's steps, in order
- removal: deleting deployments and accounts (and purging them), for decommissioning, the
  clean-up of a failed run, and the removal of leftovers
"""
