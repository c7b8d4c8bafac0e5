"""A landing zone's search backend: its Azure AI Search service and embeddings deployment."""

from provisioning.models import LandingZone, SearchService


def search_backend_for(zone: LandingZone) -> SearchService:
    """The zone's search service row; when it has none yet, creates it and queues its provisioning
    (the service through ARM, the embeddings deployment, the portal's data roles on both).
    Idempotent. The caller waits for `state == active` (ingestion retries until then)."""
    raise NotImplementedError  # CONTRACT: the zone helper writes this
