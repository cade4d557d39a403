"""The path of one client request through the router: prefill, KV transfer, decode.

1. A prefill worker receives the client's body with max_tokens 1, stream false and
   harness_kv_hold, and returns its one token and its count of prompt tokens.
2. The router waits until the prefill response's arrival + the KV transfer time, then
   releases the prefill worker's KV in the background.
3. A decode worker receives {"harness_prefilled": true, "prompt_tokens": N, "max_tokens"}
   and streams the other max_tokens - 1 tokens. Once its response headers arrive, the
   router sends the client the prefill's token, then forwards each decode token in the
   client's format. A request with max_tokens 1 skips steps 2 and 3, because no decode
   worker needs its KV.

Both workers get the client's X-Request-Id (or a new id), so the router's, the prefill
worker's and the decode worker's token logs name the request alike, except that the
decode worker's id of a chat request starts with "cmpl-". Each line of the
router's token log adds prefill_url, decode_url, prefill_done_perf_ns (arrival of the
prefill response) and kv_transfer_ns. A token is stamped when the router writes it to
the client, or for a non-streaming request when it arrives from the decode worker.
"""

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from harness.sim.openai_format import Endpoint, StreamRenderer, completion_body, response_id
from harness.sim.protocol import GenerationRequest
from harness.sim.roles import KV_HOLD_FIELD, PREFILLED_FIELD, PROMPT_TOKENS_FIELD
from harness.sim.router.context import (
    ENDPOINT_PATHS,
    PrefillResult,
    RouterContext,
    WorkerError,
    describe,
    error_response,
    worker_error,
)
from harness.sim.router.decode_stream import read_token_counts
from harness.sim.router.metrics import Stage

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
# Fields of the client's body that the prefill request replaces or must not carry.
_PREFILL_DROPPED_FIELDS = ("max_completion_tokens", "min_tokens", "stream_options")


class _RelayedRequest:
    """Token-log record of a request, with the times at which the router emitted tokens."""

    __slots__ = ("request_id", "prompt_tokens", "emit_perf_ns", "emit_wall_ns_first")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.prompt_tokens = 0
        self.emit_perf_ns: list[int] = []
        self.emit_wall_ns_first: int | None = None

    def stamp(self, tokens: int) -> None:
        emit_perf_ns = time.perf_counter_ns()
        if self.emit_wall_ns_first is None:
            self.emit_wall_ns_first = time.time_ns()
        self.emit_perf_ns.extend([emit_perf_ns] * tokens)


async def relay(
    ctx: RouterContext,
    request: web.Request,
    parsed: GenerationRequest,
    body: dict[str, Any],
    request_id: str,
) -> web.StreamResponse:
    """Serve one validated client request and count it as a success or a failure."""
    ctx.stats.requests_total += 1
    run = _Relay(ctx, request, parsed, request_id)
    try:
        return await run.serve(body)
    finally:
        if run.succeeded:
            ctx.stats.request_success_total += 1
            run.write_token_log()
        else:
            ctx.stats.request_failure_total += 1


class _Relay:
    def __init__(
        self, ctx: RouterContext, request: web.Request, parsed: GenerationRequest, request_id: str
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.parsed = parsed
        self.request_id = request_id
        self.record = _RelayedRequest(response_id(parsed.endpoint, request_id))
        self.prefill: PrefillResult | None = None
        self.decode_url: str | None = None
        self.kv_transfer_ns = 0
        self.generated_tokens = 0
        self.succeeded = False

    async def serve(self, body: dict[str, Any]) -> web.StreamResponse:
        try:
            prefill = self.prefill = await self._run_prefill(body)
        except WorkerError as error:
            self.ctx.log_worker_error(error, self.request_id)
            return error_response(error)
        self.record.prompt_tokens = prefill.prompt_tokens
        self.ctx.stats.prompt_tokens_total += prefill.prompt_tokens

        if self.parsed.max_tokens == 1:
            self.ctx.release_kv_later(prefill, self.request_id)
            return await self._respond(None)

        try:
            await self._wait_for_transfer(prefill)
        finally:
            # Also on a client disconnect, so that the prefill worker frees the KV at once.
            self.ctx.release_kv_later(prefill, self.request_id)

        url = self.decode_url = self.ctx.decode_pool.acquire()
        self.ctx.stats.in_flight[Stage.DECODE] += 1
        try:
            return await self._run_decode(url)
        except WorkerError as error:
            self.ctx.log_worker_error(error, self.request_id)
            return error_response(error)
        finally:
            self.ctx.decode_pool.release(url)
            self.ctx.stats.in_flight[Stage.DECODE] -= 1

    async def _run_prefill(self, body: dict[str, Any]) -> PrefillResult:
        prefill_body = {k: v for k, v in body.items() if k not in _PREFILL_DROPPED_FIELDS}
        prefill_body.update({"max_tokens": 1, "stream": False, KV_HOLD_FIELD: True})

        url = self.ctx.prefill_pool.acquire()
        self.ctx.stats.in_flight[Stage.PREFILL] += 1
        try:
            path = ENDPOINT_PATHS[self.parsed.endpoint]
            async with self.ctx.session.post(
                url + path, json=prefill_body, headers={"X-Request-Id": self.request_id}
            ) as response:
                payload = await response.read()
                done_perf_ns = time.perf_counter_ns()
                if response.status != 200:
                    raise worker_error(Stage.PREFILL, url, response.status, payload)
        except aiohttp.ClientError as exc:
            message = f"prefill worker {url} failed: {describe(exc)}. Check that it runs"
            raise WorkerError(502, message, Stage.PREFILL, url) from exc
        finally:
            self.ctx.prefill_pool.release(url)
            self.ctx.stats.in_flight[Stage.PREFILL] -= 1

        try:
            reply = json.loads(payload)
            return PrefillResult(url, reply["id"], reply["usage"]["prompt_tokens"], done_perf_ns)
        except (ValueError, KeyError, TypeError) as exc:
            message = (
                f"prefill worker {url} returned a body without id and usage: {payload[:200]!r}"
            )
            raise WorkerError(502, message, Stage.PREFILL, url) from exc

    async def _wait_for_transfer(self, prefill: PrefillResult) -> None:
        self.kv_transfer_ns = self.ctx.transfer.transfer_ns(prefill.prompt_tokens)
        self.ctx.stats.kv_transfer_ns_total += self.kv_transfer_ns
        deadline_perf_ns = prefill.done_perf_ns + self.kv_transfer_ns
        self.ctx.stats.in_flight[Stage.TRANSFER] += 1
        try:
            # A timer may fire up to the clock's resolution early, so the wait repeats
            # until the deadline has passed.
            while (remaining_ns := deadline_perf_ns - time.perf_counter_ns()) > 0:
                await asyncio.sleep(remaining_ns / 1e9)
        finally:
            self.ctx.stats.in_flight[Stage.TRANSFER] -= 1

    async def _run_decode(self, url: str) -> web.StreamResponse:
        assert self.prefill is not None
        decode_body = {
            "model": self.ctx.model_name,
            PREFILLED_FIELD: True,
            PROMPT_TOKENS_FIELD: self.prefill.prompt_tokens,
            "max_tokens": self.parsed.max_tokens,
            "stream": True,
        }
        path = ENDPOINT_PATHS[Endpoint.COMPLETIONS]
        try:
            async with self.ctx.session.post(
                url + path, json=decode_body, headers={"X-Request-Id": self.request_id}
            ) as response:
                if response.status != 200:
                    payload = await response.read()
                    raise worker_error(Stage.DECODE, url, response.status, payload)
                return await self._respond(response)
        except aiohttp.ClientError as exc:
            message = f"decode worker {url} failed: {describe(exc)}. Check that it runs"
            raise WorkerError(502, message, Stage.DECODE, url) from exc

    async def _respond(
        self, decode_response: aiohttp.ClientResponse | None
    ) -> web.StreamResponse:
        """Send the prefill's token and the decode worker's tokens in the client's format."""
        parsed, prefill = self.parsed, self.prefill
        assert prefill is not None
        renderer = StreamRenderer(
            parsed.endpoint, self.record.request_id, self.ctx.model_name, prefill.prompt_tokens,
            parsed.include_usage, parsed.continuous_usage,
        )
        client = web.StreamResponse(headers=SSE_HEADERS) if parsed.stream else None

        tail = b""
        try:
            if client is not None:
                await client.prepare(self.request)
            await self._emit(client, renderer, 1)
            if decode_response is not None:
                await self._forward_decode_stream(decode_response, client, renderer)
            self.succeeded = True
        except WorkerError as error:
            if client is None:
                raise
            self.ctx.log_worker_error(error, self.request_id)
            # Like a worker, the stream ends with the error event and without [DONE].
            tail = renderer.error_event(error.status, error.message)
        except ConnectionError:
            # Only writes to the client raise it (aiohttp's ClientConnectionResetError is
            # one), and a non-streaming request makes none here.
            if client is None:
                raise
            logger.debug("Client of %s disconnected", self.record.request_id)
            return client

        if client is None:
            body = completion_body(
                parsed.endpoint, self.record.request_id, self.ctx.model_name,
                prefill.prompt_tokens, parsed.max_tokens,
            )
            return web.json_response(body)
        try:
            await client.write_eof(tail)
        except ConnectionError:
            logger.debug("Client of %s disconnected before the last events", self.record.request_id)
        return client

    async def _forward_decode_stream(
        self,
        decode_response: aiohttp.ClientResponse,
        client: web.StreamResponse | None,
        renderer: StreamRenderer,
    ) -> None:
        assert self.decode_url is not None
        url, max_tokens = self.decode_url, self.parsed.max_tokens
        token_counts = read_token_counts(decode_response, url)
        async with contextlib.aclosing(token_counts):
            async for tokens in token_counts:
                if self.generated_tokens + tokens > max_tokens:
                    message = (
                        f"decode worker {url} sent more than the {max_tokens - 1} tokens expected"
                    )
                    raise WorkerError(502, message, Stage.DECODE, url)
                await self._emit(client, renderer, tokens)

        if self.generated_tokens != max_tokens:
            message = (
                f"decode worker {url} ended its stream after {self.generated_tokens - 1} of "
                f"{max_tokens - 1} tokens"
            )
            raise WorkerError(502, message, Stage.DECODE, url)

    async def _emit(
        self, client: web.StreamResponse | None, renderer: StreamRenderer, tokens: int
    ) -> None:
        """Send the client the next tokens in one write, or only stamp them when not streaming."""
        first = self.generated_tokens + 1
        self.generated_tokens += tokens
        self.ctx.stats.generation_tokens_total += tokens
        if client is None:
            self.record.stamp(tokens)
            return
        max_tokens = self.parsed.max_tokens
        events = b"".join(
            renderer.token_events(number, max_tokens) for number in range(first, first + tokens)
        )
        self.record.stamp(tokens)
        await client.write(events)

    def write_token_log(self) -> None:
        if self.ctx.token_log is None or self.prefill is None:
            return
        extra = {
            "prefill_url": self.prefill.url,
            "decode_url": self.decode_url,
            "prefill_done_perf_ns": self.prefill.done_perf_ns,
            "kv_transfer_ns": self.kv_transfer_ns,
        }
        self.ctx.token_log.record(self.record, extra)
        self.ctx.token_log.flush()
