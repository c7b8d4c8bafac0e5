"""The Azure OpenAI data plane: chat completions on an account's endpoint, as Azure serves them.

An account's endpoint is `{emulator}/accounts/{customSubDomainName}/`, so the routes are
- POST /accounts/{subdomain}/openai/deployments/{deployment}/chat/completions?api-version=...
  (what `AsyncAzureOpenAI(azure_endpoint=...)` calls), and
- POST /accounts/{subdomain}/openai/v1/chat/completions, the deployment named by the body's
  `model` (what `OpenAI(base_url=f"{endpoint}openai/v1/")` calls).

A call goes through the checks in Azure's order: the account, the caller (an Entra ID token
whose principal holds a data role on the account, or an api-key where local auth is allowed), the
deployment, the request body, injected faults, the deployment's rate limits and the prompt
content filter. Then the answer (see `textgen`) is sent as one JSON body or as server-sent
events, and what was delivered is metered for Cost Management.

`chat` serves a call in that order; `access`, `chat_request` (the body and the checks against
the model), `limits` and `content_filter` make the checks; `errors` writes the refusals;
`answer` and `streaming` deliver. This module is the URL table.
"""

from starlette.routing import Route

from provisioning.emulator.dataplane.chat import (
    chat_completions,
    chat_completions_v1,
    chat_prompts,
    unknown_operation,
)
from provisioning.emulator.dataplane.embeddings import embeddings, embeddings_v1

__all__ = ["routes"]

routes = [
    Route("/_emulator/chat-prompts", chat_prompts, methods=["GET", "DELETE"]),
    Route(
        "/accounts/{subdomain}/openai/deployments/{deployment}/chat/completions",
        chat_completions,
        methods=["POST"],
    ),
    Route("/accounts/{subdomain}/openai/v1/chat/completions", chat_completions_v1, methods=["POST"]),
    Route("/accounts/{subdomain}/openai/deployments/{deployment}/embeddings", embeddings, methods=["POST"]),
    Route("/accounts/{subdomain}/openai/v1/embeddings", embeddings_v1, methods=["POST"]),
    Route(
        "/accounts/{subdomain}/{operation:path}",
        unknown_operation,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    ),
]
