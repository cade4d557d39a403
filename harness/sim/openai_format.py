"""OpenAI-format response bodies and pre-encoded server-sent events.

Every generated token has the text TOKEN_TEXT. Streamed events are rendered from byte
templates built once per request, because the server writes one event per token to
thousands of streams and a json.dumps per token would dominate its CPU time.
"""

import json
import time
from enum import Enum
from typing import Any

TOKEN_TEXT = " tok"
DONE_EVENT = b"data: [DONE]\n\n"
_USAGE_TEMPLATE = b'{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}'


class Endpoint(Enum):
    COMPLETIONS = "completions"
    CHAT = "chat"


def response_id(endpoint: Endpoint, request_id: str) -> str:
    """Return the id of a response, prefixed as OpenAI and vLLM do ("cmpl-", "chatcmpl-")."""
    prefix = "cmpl-" if endpoint is Endpoint.COMPLETIONS else "chatcmpl-"
    return prefix + request_id


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """Build an OpenAI-style error object whose type follows the HTTP status."""
    error_types = {400: "invalid_request_error", 404: "not_found_error", 503: "server_error"}
    return {
        "error": {
            "message": message,
            "type": error_types.get(status, "server_error"),
            "param": param,
            "code": status,
        }
    }


def models_body(model_name: str, context_length: int, created_s: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": model_name,
                "object": "model",
                "created": created_s,
                "owned_by": "harness",
                "max_model_len": context_length,
            }
        ],
    }


def completion_body(
    endpoint: Endpoint,
    resp_id: str,
    model_name: str,
    prompt_tokens: int,
    completion_tokens: int,
    text_tokens: int | None = None,
) -> dict[str, Any]:
    """Build the non-streaming response of a request that generated completion_tokens.

    text_tokens, when set, is the number of tokens in the text, for a decode worker whose
    usage also counts the first token that the prefill worker generated.
    """
    text = TOKEN_TEXT * (completion_tokens if text_tokens is None else text_tokens)
    if endpoint is Endpoint.COMPLETIONS:
        object_type = "text_completion"
        choice: dict[str, Any] = {"index": 0, "text": text}
    else:
        object_type = "chat.completion"
        choice = {"index": 0, "message": {"role": "assistant", "content": text}}
    choice["logprobs"] = None
    choice["finish_reason"] = "length"
    return {
        "id": resp_id,
        "object": object_type,
        "created": int(time.time()),
        "model": model_name,
        "choices": [choice],
        "usage": usage(prompt_tokens, completion_tokens),
    }


class StreamRenderer:
    """Byte templates for one streamed response.

    Token chunks carry TOKEN_TEXT and finish_reason null, except the last, whose
    finish_reason is "length". A chat stream starts with a chunk whose delta is only
    {"role": "assistant", "content": ""}. With include_usage, a chunk with empty choices
    and the usage follows the last token; with continuous_usage, every chunk also carries
    the cumulative usage.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        resp_id: str,
        model_name: str,
        prompt_tokens: int,
        include_usage: bool,
        continuous_usage: bool,
    ) -> None:
        self.endpoint = endpoint
        self.prompt_tokens = prompt_tokens
        self.include_usage = include_usage
        self.continuous_usage = continuous_usage

        if endpoint is Endpoint.COMPLETIONS:
            object_type = "text_completion"
        else:
            object_type = "chat.completion.chunk"
        head = (
            f'data: {{"id":{json.dumps(resp_id)},"object":"{object_type}",'
            f'"created":{int(time.time())},"model":{json.dumps(model_name)},"choices":['
        ).encode()
        if endpoint is Endpoint.COMPLETIONS:
            content = b'"text":' + json.dumps(TOKEN_TEXT).encode()
        else:
            content = b'"delta":{"content":' + json.dumps(TOKEN_TEXT).encode() + b"}"
        self._choices_head = head
        self._token_head = head + b'{"index":0,' + content + b',"logprobs":null,"finish_reason":'

        # Without continuous usage a chunk never changes, so it is rendered once.
        self._token_event = self._token_head + b"null}]}\n\n"
        self._last_token_event = self._token_head + b'"length"}]}\n\n'

    def _usage(self, completion_tokens: int) -> bytes:
        total_tokens = self.prompt_tokens + completion_tokens
        return _USAGE_TEMPLATE % (self.prompt_tokens, completion_tokens, total_tokens)

    def token_events(self, generated_tokens: int, max_tokens: int) -> bytes:
        """Render the events that deliver token number generated_tokens (1-based).

        The first token of a chat stream is preceded by the role-only chunk, and the last
        token is followed by the usage chunk (with include_usage) and [DONE], so that one
        write sends all events of a step.
        """
        last = generated_tokens == max_tokens
        if self.continuous_usage:
            finish = b'"length"' if last else b"null"
            usage_json = self._usage(generated_tokens)
            events = self._token_head + finish + b'}],"usage":' + usage_json + b"}\n\n"
        else:
            events = self._last_token_event if last else self._token_event

        if generated_tokens == 1 and self.endpoint is Endpoint.CHAT:
            events = self._role_event() + events
        if last:
            events += self._closing_events(generated_tokens)
        return events

    def _role_event(self) -> bytes:
        event = (
            self._choices_head
            + b'{"index":0,"delta":{"role":"assistant","content":""},'
            + b'"logprobs":null,"finish_reason":null}]'
        )
        if self.continuous_usage:
            event += b',"usage":' + self._usage(0)
        return event + b"}\n\n"

    def _closing_events(self, completion_tokens: int) -> bytes:
        if not self.include_usage:
            return DONE_EVENT
        usage_event = self._choices_head + b'],"usage":' + self._usage(completion_tokens) + b"}\n\n"
        return usage_event + DONE_EVENT

    def error_event(self, status: int, message: str) -> bytes:
        """Render an error payload sent in place of the remaining tokens, without [DONE]."""
        return b"data: " + json.dumps(error_body(status, message)).encode() + b"\n\n"
