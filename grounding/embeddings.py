"""Embedding passages and questions with the landing zone's embeddings deployment, through the
openai SDK and the portal's Entra ID token (keyless).

Ingestion (a Celery worker) calls the synchronous client with the SDK's own retries off: a
throttled call comes back at once with Azure's retry-after, and the task re-schedules itself
instead of sleeping. Retrieval (a chat turn, on the event loop) uses the chat's async client per
account endpoint (calls.transport), whose retries honour retry-after within a turn."""

import functools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import openai
from django.conf import settings

from calls.transport import API_VERSION, openai_client
from provisioning.azure import data_plane_token_provider
from provisioning.models import ModelDeployment

# Azure takes up to 2,048 inputs a call; a batch stays far below, so one throttled or failed call
# costs little to repeat, and within its share of the deployment's tokens a minute.
MAX_BATCH_INPUTS = 64
MAX_BATCH_TOKENS = 40_000
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0


class EmbeddingsBusy(Exception):
    """The deployment is at its tokens (or requests) a minute: try again after `retry_after`."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"The embeddings deployment is busy; retrying in {retry_after:.0f} s.")
        self.retry_after = retry_after


class EmbeddingsUnavailable(Exception):
    """Azure OpenAI did not answer (no connection, a 5xx): worth trying again later."""


class EmbeddingsRefused(Exception):
    """Azure OpenAI refused the call for a reason retrying cannot fix; the message says which."""


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    tokens: int


def tokens_per_minute(deployment: ModelDeployment) -> int:
    return deployment.capacity * 1000


def batches(token_counts: Sequence[int], *, tokens_per_minute: int) -> Iterator[range]:
    """Index ranges of the inputs, each batch at most MAX_BATCH_INPUTS inputs and at most a sixth
    of the deployment's minute (so several documents can embed at once) or MAX_BATCH_TOKENS."""
    budget = max(1, min(MAX_BATCH_TOKENS, math.ceil(tokens_per_minute / 6)))
    start = used = 0
    for position, tokens in enumerate(token_counts):
        if position > start and (position - start >= MAX_BATCH_INPUTS or used + tokens > budget):
            yield range(start, position)
            start, used = position, 0
        used += tokens
    if start < len(token_counts):
        yield range(start, len(token_counts))


def passage_client(deployment: ModelDeployment) -> openai.AzureOpenAI:
    """The synchronous client for ingestion, with no retries of its own: one per account endpoint
    and worker process, kept from one document to the next (a new client costs a TLS context and
    a connection; making one per document took a twelfth of a worker's time)."""
    assert deployment.account is not None
    return _passage_client(deployment.account.endpoint)


@functools.cache
def _passage_client(endpoint: str) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=endpoint,
        api_version=API_VERSION,
        azure_ad_token_provider=data_plane_token_provider(),
        max_retries=0,
        timeout=openai.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
    )


def embed_passages(client: openai.AzureOpenAI, deployment: ModelDeployment, texts: list[str]) -> Embedded:
    try:
        response = client.embeddings.create(
            model=deployment.name, input=texts, dimensions=settings.GROUNDING_EMBEDDING_DIMENSIONS
        )
    except openai.RateLimitError as error:
        raise EmbeddingsBusy(_retry_after(error.response)) from error
    except (openai.APIConnectionError, openai.InternalServerError) as error:
        raise EmbeddingsUnavailable(str(error)) from error
    except openai.APIStatusError as error:
        if error.status_code >= 500:
            raise EmbeddingsUnavailable(str(error)) from error
        raise EmbeddingsRefused(_refusal(error)) from error
    vectors = [item.embedding for item in sorted(response.data, key=lambda item: item.index)]
    return Embedded(vectors=vectors, tokens=response.usage.prompt_tokens)


async def embed_question(deployment: ModelDeployment, text: str) -> Embedded:
    """The question's vector, on the event loop (the chat's client for the account)."""
    assert deployment.account is not None
    client = openai_client(deployment.account.endpoint)
    response = await client.embeddings.create(
        model=deployment.name, input=[text], dimensions=settings.GROUNDING_EMBEDDING_DIMENSIONS
    )
    return Embedded(vectors=[response.data[0].embedding], tokens=response.usage.prompt_tokens)


def _retry_after(response: object) -> float:
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(float(value) * scale, 0.5)
            except ValueError:
                continue
    return 10.0


def _refusal(error: openai.APIStatusError) -> str:
    body = error.body if isinstance(error.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") or str(error)
    return f"Azure OpenAI refused to embed the document ({error.status_code}): {message}"
