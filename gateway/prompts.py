"""The size of an application's call before it is sent: its prompt's tokens, never fewer than Azure
will count (what admission reserves is a bound), and the most it may write. The request is checked
only as far as that needs; everything else is Azure's to judge, in Azure's words."""

import json
from dataclasses import dataclass
from typing import Any

from gateway.errors import bad_request
from provisioning import tokenizer
from provisioning.catalog import ModelLimits

# An image in a prompt costs tokens by its size, which the gateway does not read: the most the
# model can charge for one. The mini models charge many more tokens per image (at a lower price
# per token) than the others.
IMAGE_TOKENS_BOUND = 2_500
MINI_IMAGE_TOKENS_BOUND = 50_000
# Azure writes tool definitions and tool calls into the prompt in a format of its own, shorter
# than their JSON; their JSON's tokens and this much per item bound it.
TOOL_TOKENS_SLACK = 16


@dataclass(frozen=True)
class CallSize:
    prompt_tokens: int
    max_output_tokens: int


def _text(value: Any, model_name: str) -> int:
    if isinstance(value, str):
        return tokenizer.text_tokens(value, model_name=model_name)
    return tokenizer.text_tokens(json.dumps(value), model_name=model_name) + TOOL_TOKENS_SLACK


def _content_tokens(content: Any, model_name: str) -> int:
    if content is None or isinstance(content, str):
        return tokenizer.text_tokens(content or "", model_name=model_name)
    if not isinstance(content, list):
        return _text(content, model_name)
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            total += tokenizer.text_tokens(part["text"], model_name=model_name)
        elif kind == "image_url":
            total += MINI_IMAGE_TOKENS_BOUND if "mini" in model_name else IMAGE_TOKENS_BOUND
        else:
            # Anything else (audio, files, refusals) is at most as many tokens as its JSON's bytes.
            total += len(json.dumps(part).encode())
    return total


def _messages_tokens(messages: list[Any], model_name: str) -> int:
    texts = []
    named = 0
    for message in messages:
        if not isinstance(message, dict):
            raise bad_request("Invalid 'messages': every message must be an object.", param="messages")
        tokens = _content_tokens(message.get("content"), model_name)
        for field in ("tool_calls", "function_call", "audio"):
            if message.get(field):
                tokens += _text(message[field], model_name)
        name = message.get("name")
        if isinstance(name, str) and name:
            named += 1
            tokens += tokenizer.text_tokens(name, model_name=model_name)
        texts.append(tokens)
    return tokenizer.prompt_tokens(texts, named_messages=named)


def _max_output(body: dict[str, Any], limits: ModelLimits) -> int:
    asked = None
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
        if value > limits.output_tokens:
            raise bad_request(
                f"{name} is too large: {value}. This model supports at most {limits.output_tokens} "
                f"completion tokens, whereas you provided {value}.",
                param=name,
                code="invalid_value",
            )
        asked = value if asked is None else min(asked, value)
    return asked if asked is not None else limits.output_tokens


def chat_size(body: dict[str, Any], *, model_name: str, limits: ModelLimits) -> CallSize:
    """A chat completion's prompt (messages, tools, response format) and its longest answer
    (`max_completion_tokens` or `max_tokens`, else the model's own limit), for every choice."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "Missing required parameter: 'messages' (a non-empty array of message objects).",
            param="messages",
            code="missing_required_parameter",
        )
    prompt = _messages_tokens(messages, model_name)
    for field in ("tools", "functions", "response_format", "prediction"):
        value = body.get(field)
        if value:
            prompt += _text(value, model_name) + TOOL_TOKENS_SLACK * (
                len(value) if isinstance(value, list) else 1
            )
    choices = body.get("n", 1)
    if choices is None:
        choices = 1
    if isinstance(choices, bool) or not isinstance(choices, int) or not 1 <= choices <= 128:
        raise bad_request("Invalid 'n': expected an integer between 1 and 128.", param="n")
    return CallSize(prompt_tokens=prompt, max_output_tokens=_max_output(body, limits) * choices)


def embeddings_size(body: dict[str, Any], *, model_name: str) -> CallSize:
    """An embeddings call's input: a text, a list of texts, or tokens as Azure takes them."""
    value = body.get("input")
    if value is None or value == "" or value == []:
        raise bad_request(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    inputs = (
        value if isinstance(value, list) and not all(isinstance(item, int) for item in value) else [value]
    )
    total = 0
    for item in inputs:
        if isinstance(item, str):
            total += tokenizer.text_tokens(item, model_name=model_name)
        elif isinstance(item, list) and all(isinstance(token, int) for token in item):
            total += len(item)
        else:
            raise bad_request(
                "Invalid 'input': expected a string, an array of strings, or arrays of token ids.",
                param="input",
                code="invalid_type",
            )
    return CallSize(prompt_tokens=total, max_output_tokens=0)


def stream_wanted(body: dict[str, Any]) -> tuple[bool, bool]:
    """(whether the caller asked for a stream, whether it asked for the usage chunk)."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("Invalid 'stream': expected a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    if options is not None and not isinstance(options, dict):
        raise bad_request("Invalid 'stream_options': expected an object.", param="stream_options")
    return bool(stream), bool(options and options.get("include_usage") is True)
