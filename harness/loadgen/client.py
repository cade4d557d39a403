"""Send one streaming request and record its timings and outcome as a RequestRecord.

A failed request is data, not an exception. HTTP errors, connection errors, timeouts,
error payloads inside the stream and streams without tokens all return a record whose
error_type names the failure. Only cancellation propagates.
"""

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from harness.loadgen.prompts import EndpointKind
from harness.loadgen.records import (
    ERROR_CONNECTION,
    ERROR_HTTP,
    ERROR_NO_TOKENS,
    ERROR_STREAM,
    ERROR_TIMEOUT,
    RequestRecord,
)
from harness.loadgen.sse import SSEParser

logger = logging.getLogger(__name__)

# Maximum length of a record's error_message, in characters.
MAX_ERROR_MESSAGE_CHARS = 300

# Bytes read from the body of an HTTP error response, enough for a JSON error object.
_ERROR_BODY_BYTES = 4096


@dataclass(frozen=True)
class Endpoint:
    """Target of the requests: full URL, endpoint kind, total timeout and headers."""

    url: str
    kind: EndpointKind
    timeout_s: float
    # Kept out of repr because it may carry the API key as an Authorization header.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PreparedRequest:
    """A request whose JSON body was built before the level started, so that building it
    costs no time while requests are in flight."""

    request_id: int
    warmup: bool
    target_isl: int
    target_osl: int
    body: bytes = field(repr=False)


async def send_request(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    request: PreparedRequest,
    scheduled_perf_ns: int,
) -> RequestRecord:
    """Send request, read its event stream to the end and return its record.

    The timeout covers the whole request, from connecting to the end of the stream. A
    timeout after [DONE] arrived (a server that keeps the body open) is not a failure.
    """
    record = RequestRecord(
        request_id=request.request_id,
        warmup=request.warmup,
        target_isl=request.target_isl,
        target_osl=request.target_osl,
        scheduled_perf_ns=scheduled_perf_ns,
        send_perf_ns=0,
        send_wall_ns=0,
    )
    stream = _StreamState(endpoint.kind, record)
    response: aiohttp.ClientResponse | None = None

    try:
        async with asyncio.timeout(endpoint.timeout_s):
            record.send_wall_ns = time.time_ns()
            record.send_perf_ns = time.perf_counter_ns()
            async with session.post(endpoint.url, data=request.body, headers=endpoint.headers) as response:
                record.headers_perf_ns = time.perf_counter_ns()
                record.status_code = response.status
                if response.status != 200:
                    body = await response.content.read(_ERROR_BODY_BYTES)
                    stream.fail(ERROR_HTTP, f"HTTP {response.status}: {_http_error_text(body)}")
                else:
                    await stream.read(response)
    except TimeoutError:
        if not stream.parser.done:
            stream.fail(ERROR_TIMEOUT, f"timed out after timeout_s={endpoint.timeout_s} before the stream ended")
    except (aiohttp.ClientError, OSError) as error:
        stream.fail(ERROR_CONNECTION, f"{type(error).__name__}: {error}")

    if record.end_perf_ns is None:
        record.end_perf_ns = time.perf_counter_ns()
    if record.error_type is None and not record.token_perf_ns:
        content_type = None if response is None else response.headers.get("Content-Type")
        stream.fail(ERROR_NO_TOKENS, f"the stream carried no token (content type {content_type})")

    if record.error_type is not None:
        logger.debug("request %d failed: %s: %s", record.request_id, record.error_type, record.error_message)
    return record


class _StreamState:
    """Parser and token accounting of one response body."""

    __slots__ = ("kind", "record", "parser", "completion_tokens_seen")

    def __init__(self, kind: EndpointKind, record: RequestRecord) -> None:
        self.kind = kind
        self.record = record
        self.parser = SSEParser()
        # Cumulative completion tokens accounted for by the token events so far.
        self.completion_tokens_seen = 0

    def fail(self, error_type: str, message: str) -> None:
        if self.record.error_type is None:
            self.record.error_type = error_type
            self.record.error_message = message[:MAX_ERROR_MESSAGE_CHARS]
        if self.record.end_perf_ns is None:
            self.record.end_perf_ns = time.perf_counter_ns()

    async def read(self, response: aiohttp.ClientResponse) -> None:
        """Parse the response body, stamping every event with the time its read returned."""
        parser = self.parser
        record = self.record
        async for chunk in response.content.iter_any():
            stamp_ns = time.perf_counter_ns()
            for data in parser.feed(chunk):
                if not self.handle_event(data, stamp_ns):
                    return
            if parser.done and record.end_perf_ns is None:
                # Keep reading to the end of the body after [DONE], so that the
                # connection goes back to the pool instead of being closed.
                record.end_perf_ns = stamp_ns

    def handle_event(self, data: str, stamp_ns: int) -> bool:
        """Record one event's usage and tokens, and return False when the event ends the request."""
        try:
            payload = json.loads(data)
        except ValueError:
            self.fail(ERROR_STREAM, f"event is not JSON: {data}")
            return False
        if not isinstance(payload, dict):
            self.fail(ERROR_STREAM, f"event is not a JSON object: {data}")
            return False
        if payload.get("error") is not None or payload.get("object") == "error":
            self.fail(ERROR_STREAM, f"error event in the stream: {_error_text(payload)}")
            return False

        record = self.record
        completion_tokens = None
        usage = payload.get("usage")
        if isinstance(usage, dict):
            prompt_tokens = usage.get("prompt_tokens")
            if isinstance(prompt_tokens, int):
                record.usage_prompt_tokens = prompt_tokens
            completion_tokens = usage.get("completion_tokens")
            if isinstance(completion_tokens, int):
                record.usage_completion_tokens = completion_tokens
            else:
                completion_tokens = None

        # The final usage chunk has an empty choices list, and role-only or empty chunks
        # carry no generated text. Neither is a token event.
        choices = payload.get("choices")
        if not choices or not _carries_text(choices[0], self.kind):
            return True

        if completion_tokens is None:
            count = 1
            self.completion_tokens_seen += 1
        else:
            # Tokens that the server generated without emitting text (e.g. the first
            # bytes of a multi-byte character) count towards the next text event.
            count = max(completion_tokens - self.completion_tokens_seen, 1)
            self.completion_tokens_seen = max(completion_tokens, self.completion_tokens_seen + 1)
        record.token_perf_ns.append(stamp_ns)
        record.token_counts.append(count)
        return True


def _carries_text(choice: Any, kind: EndpointKind) -> bool:
    if not isinstance(choice, dict):
        return False
    if kind == "completions":
        return bool(choice.get("text"))
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return False
    return bool(delta.get("content") or delta.get("reasoning_content"))


def _http_error_text(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text.strip()
    return _error_text(payload)


def _error_text(payload: Any) -> str:
    """Return the message of an OpenAI-style error object, or the payload as text."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
        if isinstance(payload.get("detail"), str):
            return payload["detail"]
    return json.dumps(payload)[:MAX_ERROR_MESSAGE_CHARS]
