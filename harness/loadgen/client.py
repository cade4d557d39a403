"""Send one streaming request and record its timings and outcome as a RequestRecord.

A failed request is data, not an exception. HTTP errors, connection errors, timeouts,
error payloads inside the stream, streams that end before [DONE] and streams without
tokens all return a record whose error_type names the failure. Only cancellation
propagates.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from harness.loadgen.error_text import MAX_ERROR_MESSAGE_CHARS, error_text, excerpt, http_error_text
from harness.loadgen.prompts import EndpointKind
from harness.loadgen.records import (
    ERROR_CONNECTION,
    ERROR_HTTP,
    ERROR_INCOMPLETE,
    ERROR_NO_TOKENS,
    ERROR_STREAM,
    ERROR_TIMEOUT,
    ERROR_TTFT_TIMEOUT,
    RequestRecord,
)
from harness.loadgen.sse import SSEParser

try:
    # orjson is optional, and json gives the same results. On a 2-core x86 VM orjson 3.8
    # decoded a 236-byte completion chunk in 1.2 us against 6.7 us for json, while the
    # client's other work per event was about 2 us.
    from orjson import loads as _json_loads
except ImportError:
    from json import loads as _json_loads

logger = logging.getLogger(__name__)

# Bytes read from the body of an HTTP error response, enough for a JSON error object.
_ERROR_BODY_BYTES = 4096

# After [DONE], the time allowed for the body to end, so that the connection can go back
# to the pool. A server that keeps the body open longer gets its connection closed.
_EOF_AFTER_DONE_S = 1.0


@dataclass(frozen=True)
class Endpoint:
    """Target of the requests: full URL, endpoint kind, timeouts and headers."""

    url: str
    kind: EndpointKind
    timeout_s: float
    # Kept out of repr because it may carry the API key as an Authorization header.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Time from send to the first token event. None, or a value of timeout_s or more,
    # leaves only timeout_s.
    ttft_timeout_s: float | None = None
    # Each request is sent with the header X-Request-Id: <prefix><request_id>, which vLLM,
    # SGLang and the simulator take as the request's id in their logs; empty sends none.
    request_id_prefix: str = ""


@dataclass(frozen=True)
class PreparedRequest:
    """A request whose JSON body was built before the level started, so that building it
    costs no time while requests are in flight."""

    request_id: int
    warmup: bool
    target_isl: int
    target_osl: int
    body: bytes = field(repr=False)


class LiveCounters:
    """Running counts of one phase of one client process, read by the progress reports."""

    __slots__ = ("done", "failed", "in_flight", "output_tokens")

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        # Tokens of every token event received so far, failed requests included.
        self.output_tokens = 0


async def send_request(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    request: PreparedRequest,
    scheduled_perf_ns: int,
    counters: LiveCounters | None = None,
    client_process: int = 0,
) -> RequestRecord:
    """Send request, read its event stream to the end and return its record.

    timeout_s covers the whole request, from connecting to the end of the stream, and
    ttft_timeout_s the time until the first token event. A timeout after [DONE]
    arrived (a server that keeps the body open) is not a failure.
    """
    record = RequestRecord(
        request_id=request.request_id,
        warmup=request.warmup,
        target_isl=request.target_isl,
        target_osl=request.target_osl,
        scheduled_perf_ns=scheduled_perf_ns,
        send_perf_ns=0,
        send_wall_ns=0,
        client_process=client_process,
    )
    stream = _StreamState(endpoint.kind, record, counters)
    response: aiohttp.ClientResponse | None = None

    # Deadlines on the event loop's clock. Until the first token the earlier of the two
    # applies, and _StreamState moves it to the total deadline at the first token.
    loop = asyncio.get_running_loop()
    started_s = loop.time()
    deadline_s = started_s + endpoint.timeout_s
    if endpoint.ttft_timeout_s is not None and endpoint.ttft_timeout_s < endpoint.timeout_s:
        stream.total_deadline_s = deadline_s
        deadline_s = started_s + endpoint.ttft_timeout_s

    try:
        async with asyncio.timeout_at(deadline_s) as scope:
            stream.scope = scope
            record.send_wall_ns = time.time_ns()
            record.send_perf_ns = time.perf_counter_ns()
            headers = endpoint.headers
            if endpoint.request_id_prefix:
                headers = {**headers, "X-Request-Id": f"{endpoint.request_id_prefix}{request.request_id}"}
            async with session.post(endpoint.url, data=request.body, headers=headers) as response:
                record.headers_perf_ns = time.perf_counter_ns()
                record.status_code = response.status
                if response.status != 200:
                    body = await response.content.read(_ERROR_BODY_BYTES)
                    stream.fail(ERROR_HTTP, f"HTTP {response.status}: {http_error_text(body)}")
                else:
                    await stream.read(response)
    except TimeoutError:
        if not stream.parser.done:
            stream.fail_timeout(endpoint)
    except (aiohttp.ClientError, OSError) as error:
        # After [DONE] the request is complete, whatever happens to the rest of the body.
        if not stream.parser.done:
            stream.fail_connection(error)

    if record.end_perf_ns is None:
        record.end_perf_ns = time.perf_counter_ns()
    if record.error_type is None and not record.token_perf_ns:
        content_type = None if response is None else response.headers.get("Content-Type")
        stream.fail(ERROR_NO_TOKENS, f"the stream carried no token (content type {content_type})")

    if record.error_type is not None:
        logger.debug("request %d failed: %s: %s", record.request_id, record.error_type, record.error_message)
    return record


class _StreamState:
    """Parser, deadline and token accounting of one response body."""

    __slots__ = ("kind", "record", "counters", "parser", "completion_tokens_seen", "scope", "total_deadline_s")

    def __init__(self, kind: EndpointKind, record: RequestRecord, counters: LiveCounters | None) -> None:
        self.kind = kind
        self.record = record
        self.counters = counters
        self.parser = SSEParser()
        # Cumulative completion tokens accounted for by the token events so far.
        self.completion_tokens_seen = 0
        self.scope: asyncio.Timeout | None = None
        # Set while the TTFT deadline is the active one; the deadline after the first token.
        self.total_deadline_s: float | None = None

    def fail(self, error_type: str, message: str) -> None:
        if self.record.error_type is None:
            self.record.error_type = error_type
            self.record.error_message = message[:MAX_ERROR_MESSAGE_CHARS]
        if self.record.end_perf_ns is None:
            self.record.end_perf_ns = time.perf_counter_ns()

    def fail_connection(self, error: Exception) -> None:
        text = f"{type(error).__name__}: {error}"
        if isinstance(error, aiohttp.ClientPayloadError):
            # The connection broke inside the body, so the server sent part of a stream.
            self.fail(ERROR_INCOMPLETE, f"the body broke off before data: [DONE]: {text}")
        else:
            self.fail(ERROR_CONNECTION, text)

    def fail_timeout(self, endpoint: Endpoint) -> None:
        events = len(self.record.token_perf_ns)
        if self.total_deadline_s is not None:
            self.fail(ERROR_TTFT_TIMEOUT, f"no token within ttft_timeout_s={endpoint.ttft_timeout_s}")
        else:
            self.fail(ERROR_TIMEOUT, f"timed out after timeout_s={endpoint.timeout_s} with {events} token events and no [DONE]")

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
                if self.scope is not None:
                    loop_now_s = asyncio.get_running_loop().time()
                    when_s = self.scope.when()
                    grace_s = loop_now_s + _EOF_AFTER_DONE_S
                    self.scope.reschedule(grace_s if when_s is None else min(when_s, grace_s))

        if not parser.done:
            events = len(record.token_perf_ns)
            content_type = response.headers.get("Content-Type")
            self.fail(ERROR_INCOMPLETE, f"the body ended before data: [DONE] after {events} token events (content type {content_type})")

    def handle_event(self, data: bytes, stamp_ns: int) -> bool:
        """Record one event's usage and tokens, and return False when the event ends the request."""
        try:
            payload = _json_loads(data)
        except ValueError:
            self.fail(ERROR_STREAM, f"event is not JSON: {excerpt(data)}")
            return False
        if type(payload) is not dict:
            self.fail(ERROR_STREAM, f"event is not a JSON object: {excerpt(data)}")
            return False
        if payload.get("error") is not None or payload.get("object") == "error":
            self.fail(ERROR_STREAM, f"error event in the stream: {error_text(payload)}")
            return False

        record = self.record
        completion_tokens = None
        usage = payload.get("usage")
        if type(usage) is dict:
            prompt_tokens = usage.get("prompt_tokens")
            if type(prompt_tokens) is int:
                record.usage_prompt_tokens = prompt_tokens
            completion_tokens = usage.get("completion_tokens")
            if type(completion_tokens) is int:
                record.usage_completion_tokens = completion_tokens
            else:
                completion_tokens = None

        # The final usage chunk has an empty choices list, and role-only or empty chunks
        # carry no generated text. Neither is a token event.
        choices = payload.get("choices")
        if not choices or not _carries_text(choices[0], self.kind):
            return True

        # Without usage an event counts 1 token. With cumulative usage it counts the new
        # tokens, at least 1: tokens that the server generated without emitting text (e.g.
        # the first bytes of a multi-byte character) count towards the next text event.
        count = 1 if completion_tokens is None else completion_tokens - self.completion_tokens_seen
        if count < 1:
            count = 1
        self.completion_tokens_seen += count

        if self.total_deadline_s is not None:
            # The first token ends the TTFT limit; the total limit applies from here.
            self.scope.reschedule(self.total_deadline_s)
            self.total_deadline_s = None
        record.token_perf_ns.append(stamp_ns)
        record.token_counts.append(count)
        if self.counters is not None:
            self.counters.output_tokens += count
        return True


def _carries_text(choice: Any, kind: EndpointKind) -> bool:
    """Return whether a choice carries generated text: completions text, or a chat delta's
    content or reasoning. SGLang and older vLLM send reasoning as reasoning_content, and
    vLLM renamed it to reasoning (vLLM pull request 27752, November 2025)."""
    if type(choice) is not dict:
        return False
    if kind == "completions":
        return bool(choice.get("text"))
    delta = choice.get("delta")
    if type(delta) is not dict:
        return False
    return bool(delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning"))
