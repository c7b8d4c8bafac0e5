"""A chat completions call as the caller sent it, and the checks Azure makes on it before it
generates anything: the JSON body, the parameters, the model's operation and its lengths."""

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from provisioning.emulator import textgen
from provisioning.emulator.catalog import Catalog
from provisioning.emulator.dataplane.errors import bad_request, operation_not_supported


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None

    @classmethod
    def parse(cls, body: dict[str, Any], *, reasoning_model: bool) -> "ChatRequest":
        messages = body.get("messages")
        if messages is None:
            raise bad_request(
                "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
            )
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise bad_request(
                "Invalid 'messages': expected a non-empty array of message objects.",
                param="messages",
                code="invalid_type",
            )
        if reasoning_model and body.get("max_tokens") is not None:
            raise bad_request(
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                "'max_completion_tokens' instead.",
                param="max_tokens",
                code="unsupported_parameter",
            )
        stream = body.get("stream") is True
        stream_options = body.get("stream_options")
        if stream_options is not None and not stream:
            raise bad_request(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        return cls(
            messages=messages,
            stream=stream,
            include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
            max_tokens=_max_tokens(body),
        )

    def prompt_text(self) -> str:
        return "\n".join(textgen.message_text(message.get("content"))[0] for message in self.messages)

    def conversation(self) -> str:
        return "\n".join(
            f"{message.get('role')}: {textgen.message_text(message.get('content'))[0]}"
            for message in self.messages
        )

    def last_user_message(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return textgen.message_text(message.get("content"))[0]
        return ""


def _max_tokens(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad_request(
                f"Invalid '{name}': expected an integer of at least 1, but got {value!r} instead.",
                param=name,
                code="integer_below_min_value",
            )
        return int(value)
    return None


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise bad_request(
            "We could not parse the JSON body of your request. The API expects a JSON payload, but what was "
            "sent was not valid JSON."
        ) from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def model_from_body(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    return model


def check_lengths(
    catalog: Catalog,
    account: dict[str, Any],
    deployment: dict[str, Any],
    chat: ChatRequest,
    prompt_tokens: int,
) -> None:
    """Azure refuses a completion longer than the model writes, or a prompt and completion
    together longer than its context window, before it generates anything."""
    model = deployment["properties"]["model"]
    offer = catalog.find(
        account["location"], name=model["name"], version=model.get("version"), sku=deployment["sku"]["name"]
    )
    capabilities = offer.model.get("capabilities", {}) if offer is not None else {}
    max_output = int(capabilities.get("maxOutputToken") or 0)
    if max_output and chat.max_tokens is not None and chat.max_tokens > max_output:
        raise bad_request(
            f"max_tokens is too large: {chat.max_tokens}. This model supports at most {max_output} "
            f"completion tokens, whereas you provided {chat.max_tokens}.",
            param="max_tokens",
            code="invalid_value",
        )
    context = int(capabilities.get("maxContextToken") or 0)
    requested = prompt_tokens + (chat.max_tokens or 0)
    if context and requested > context:
        raise bad_request(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{requested} tokens ({prompt_tokens} in the messages, {chat.max_tokens or 0} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )


def require_chat_model(catalog: Catalog, account: dict[str, Any], deployment: dict[str, Any]) -> None:
    model = deployment["properties"]["model"]
    offer = catalog.find(
        account["location"], name=model["name"], version=model.get("version"), sku=deployment["sku"]["name"]
    )
    if offer is not None and offer.model.get("capabilities", {}).get("chatCompletion") != "true":
        raise operation_not_supported(str(model["name"]))
