"""What the gateway tells the layers above it about keys, without knowing them: keys for restricted
data wait for an approval that the requests app runs."""

from django.dispatch import Signal

# Sent inside the transaction that creates a key for restricted data: a receiver opens the
# approval that decides it, or raises to undo the key. Arguments: key, actor, purpose.
api_key_needs_approval = Signal()

# Sent inside the transaction that revokes a key still waiting for approval: nothing is left to
# decide. Arguments: key, actor.
api_key_withdrawn = Signal()
