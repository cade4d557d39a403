"""Parse and validate OpenAI completion and chat request bodies.

The simulator has no tokenizer, so it counts prompt tokens by rule:
- /v1/completions: a prompt string has one token per whitespace-separated word; a prompt
  given as a list of token ids has one token per id.
- /v1/chat/completions: each message counts the words of its content (a string, or the
  "text" of its text parts) plus CHAT_TOKENS_PER_MESSAGE for the role and the template
  markers around it.
A request that sets "harness_prefilled": true gives its prompt length in "prompt_tokens"
instead (see roles.py), and its prompt or messages are not counted.
"""

from dataclasses import dataclass
from typing import Any

from harness.sim.openai_format import Endpoint
from harness.sim.roles import KV_HOLD_FIELD, PREFILLED_FIELD, PROMPT_TOKENS_FIELD

CHAT_TOKENS_PER_MESSAGE = 4


class InvalidRequest(Exception):
    """A request that the server rejects, with its HTTP status and the offending field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


@dataclass(frozen=True)
class GenerationRequest:
    endpoint: Endpoint
    model: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool
    continuous_usage: bool
    # Hand-off fields of disaggregated serving (see roles.py).
    prefilled: bool = False
    kv_hold: bool = False


def parse_generation_request(endpoint: Endpoint, body: Any) -> GenerationRequest:
    """Validate a decoded JSON body and count its prompt tokens.

    Raises InvalidRequest naming the first invalid field.
    """
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {type(body).__name__}")

    model = body.get("model")
    if not isinstance(model, str):
        raise InvalidRequest(f"model must be the served model's name, got {model!r}", "model")

    for flag in (PREFILLED_FIELD, KV_HOLD_FIELD):
        if body.get(flag) is not None and not isinstance(body[flag], bool):
            raise InvalidRequest(f"{flag} must be true or false, got {body[flag]!r}", flag)
    prefilled = body.get(PREFILLED_FIELD) is True

    if prefilled:
        prompt_tokens = body.get(PROMPT_TOKENS_FIELD)
        if not _is_int(prompt_tokens) or prompt_tokens < 1:
            raise InvalidRequest(
                f"a request with {PREFILLED_FIELD}: true must set {PROMPT_TOKENS_FIELD} to the "
                f"prompt length prefilled elsewhere (an integer >= 1), got {prompt_tokens!r}",
                PROMPT_TOKENS_FIELD,
            )
    elif endpoint is Endpoint.COMPLETIONS:
        prompt_tokens = _count_prompt_tokens(body.get("prompt"))
    else:
        prompt_tokens = _count_chat_tokens(body.get("messages"))

    if endpoint is Endpoint.COMPLETIONS:
        max_tokens = _positive_int(body, "max_tokens")
    else:
        # max_completion_tokens replaces the deprecated max_tokens in OpenAI's chat API.
        if body.get("max_completion_tokens") is not None:
            max_tokens = _positive_int(body, "max_completion_tokens")
        else:
            max_tokens = _positive_int(body, "max_tokens")

    min_tokens = body.get("min_tokens")
    if min_tokens is not None and (not _is_int(min_tokens) or not 0 <= min_tokens <= max_tokens):
        raise InvalidRequest(
            f"min_tokens must be an integer from 0 to max_tokens ({max_tokens}), "
            f"got {min_tokens!r}",
            "min_tokens",
        )
    for flag in ("stream", "ignore_eos"):
        if body.get(flag) is not None and not isinstance(body[flag], bool):
            raise InvalidRequest(f"{flag} must be true or false, got {body[flag]!r}", flag)
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest(
            f"n must be 1 because the simulator returns one choice, got {n!r}", "n"
        )

    stream = bool(body.get("stream", False))
    include_usage, continuous_usage = _parse_stream_options(body.get("stream_options"), stream)
    return GenerationRequest(
        endpoint=endpoint,
        model=model,
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous_usage,
        prefilled=prefilled,
        kv_hold=body.get(KV_HOLD_FIELD) is True,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"{name} is missing. Set it to the tokens to generate (>= 1)", name)
    if not _is_int(value) or value < 1:
        raise InvalidRequest(f"{name} must be an integer >= 1, got {value!r}", name)
    return value


def _count_prompt_tokens(prompt: Any) -> int:
    if isinstance(prompt, str):
        tokens = len(prompt.split())
    elif isinstance(prompt, list) and all(_is_int(token) and token >= 0 for token in prompt):
        tokens = len(prompt)
    else:
        raise InvalidRequest(
            "prompt must be a string or a list of token ids (integers >= 0). "
            "Lists of prompts are not supported",
            "prompt",
        )
    if tokens == 0:
        raise InvalidRequest("prompt is empty. Send at least one word or token id", "prompt")
    return tokens


def _count_chat_tokens(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(f"messages must be a non-empty list, got {messages!r}", "messages")

    tokens = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            message_error = f"messages[{index}] must be an object with a string role"
            raise InvalidRequest(message_error, "messages")
        tokens += CHAT_TOKENS_PER_MESSAGE + _count_content_words(message.get("content"), index)
    return tokens


def _count_content_words(content: Any, index: int) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content.split())
    if isinstance(content, list):
        words = 0
        for part in content:
            if not isinstance(part, dict):
                raise InvalidRequest(f"messages[{index}].content parts must be objects", "messages")
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                words += len(part["text"].split())
        return words
    content_error = f"messages[{index}].content must be a string, a list of parts or null"
    raise InvalidRequest(content_error, "messages")


def _parse_stream_options(options: Any, stream: bool) -> tuple[bool, bool]:
    """Return (include_usage, continuous_usage).

    As in vLLM, stream_options requires stream: true, and continuous_usage_stats only
    takes effect together with include_usage.
    """
    if options is None:
        return False, False
    if not stream:
        raise InvalidRequest("stream_options is only allowed when stream is true", "stream_options")
    if not isinstance(options, dict):
        raise InvalidRequest(f"stream_options must be an object, got {options!r}", "stream_options")

    values = []
    for key in ("include_usage", "continuous_usage_stats"):
        value = options.get(key, False)
        if value is None:
            value = False
        if not isinstance(value, bool):
            option_error = f"stream_options.{key} must be true or false, got {value!r}"
            raise InvalidRequest(option_error, "stream_options")
        values.append(value)
    include_usage, continuous_usage_stats = values
    return include_usage, include_usage and continuous_usage_stats
