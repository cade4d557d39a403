"""aiohttp application of the simulated engine: OpenAI routes, health and metrics.

Streamed tokens are written by the scheduler's step loop straight to each connection's
transport, framed as HTTP/1.1 chunks, so a step costs one socket write per stream and no
task switch. The handler task only opens the response and, when the request ends, writes
the last events together with the end of the body.

The server runs one role (see roles.py): aggregated, prefill or decode. A prefill server
also serves POST KV_RELEASE_PATH, which frees the KV that a hand-off holds.
"""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.http import HttpVersion11

from harness.sim.model import StepCostModel
from harness.sim.openai_format import (
    Endpoint,
    StreamRenderer,
    completion_body,
    error_body,
    models_body,
    response_id,
)
from harness.sim.prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE
from harness.sim.prometheus import render_metrics
from harness.sim.protocol import GenerationRequest, InvalidRequest, parse_generation_request
from harness.sim.request import RequestState, SimRequest
from harness.sim.role_rules import check_fits, check_role, new_engine_request
from harness.sim.roles import KV_HOLD_FIELD, KV_RELEASE_PATH, Role
from harness.sim.scheduler import DEFAULT_KV_HOLD_TIMEOUT_S, EngineLimits, Scheduler
from harness.sim.token_log import TokenLog

logger = logging.getLogger(__name__)

# Prompts sent as token-id lists of a long context take several MB of JSON.
MAX_REQUEST_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    model_name: str
    context_length: int
    cost: StepCostModel
    limits: EngineLimits
    token_log_path: Path | None = None
    role: Role = Role.AGGREGATED
    kv_hold_timeout_s: float = DEFAULT_KV_HOLD_TIMEOUT_S


SETTINGS_KEY = web.AppKey("settings", ServerSettings)
SCHEDULER_KEY = web.AppKey("scheduler", Scheduler)


def build_app(settings: ServerSettings) -> web.Application:
    """Build the application, whose scheduler starts and stops with it.

    Run it with handler_cancellation=True (AppRunner or TestServer) so that a client that
    disconnects before its first token frees its KV at once, not at its next token.
    """
    app = web.Application(client_max_size=MAX_REQUEST_BODY_BYTES)
    app[SETTINGS_KEY] = settings
    app.cleanup_ctx.append(_scheduler_context)
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    if settings.role is Role.PREFILL:
        app.router.add_post(KV_RELEASE_PATH, _release_kv)
    return app


async def _scheduler_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    token_log = None if settings.token_log_path is None else TokenLog(settings.token_log_path)
    scheduler = Scheduler(settings.cost, settings.limits, token_log, settings.kv_hold_timeout_s)
    app[SCHEDULER_KEY] = scheduler
    scheduler.start()
    yield
    await scheduler.stop()


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    return web.json_response(error_body(status, message, param), status=status)


async def _health(request: web.Request) -> web.Response:
    if request.app[SCHEDULER_KEY].is_running:
        return web.Response(status=200)
    return _error(503, "the step loop is not running, see the server log for its error")


async def _models(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    body = models_body(settings.model_name, settings.context_length, int(time.time()))
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    text = render_metrics(request.app[SCHEDULER_KEY].stats(), settings.model_name, settings.role)
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _release_kv(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        logger.debug("Rejected a KV release: body is not valid JSON: %s", exc)
        return _error(400, f"request body is not valid JSON: {exc}")
    request_id = body.get("request_id") if isinstance(body, dict) else None
    if not isinstance(request_id, str):
        logger.debug("Rejected a KV release without a request_id string: %.200r", body)
        message = f"request_id must be the id of the prefill response, got {request_id!r}"
        return _error(400, message, "request_id")

    if not request.app[SCHEDULER_KEY].release_kv(request_id):
        logger.debug("No KV held for request %s at its release call", request_id)
        timeout_s = request.app[SETTINGS_KEY].kv_hold_timeout_s
        return _error(
            404,
            f"no KV is held for request {request_id!r}: it was released already, its hold "
            f"timed out after {timeout_s:g} s, or the request did not set {KV_HOLD_FIELD}",
            "request_id",
        )
    logger.debug("Released the held KV of request %s", request_id)
    return web.json_response({"request_id": request_id, "released": True})


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, Endpoint.COMPLETIONS)


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, Endpoint.CHAT)


async def _generate(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        logger.debug("Rejected %s: body is not valid JSON: %s", request.path, exc)
        return _error(400, f"request body is not valid JSON: {exc}")
    try:
        parsed = parse_generation_request(endpoint, body)
        check_role(parsed, settings.role)
        check_fits(
            parsed, settings.role, settings.model_name, settings.context_length,
            settings.limits.kv_capacity_tokens,
        )
    except InvalidRequest as exc:
        logger.debug("Rejected %s with status %d: %s", request.path, exc.status, exc.message)
        return _error(exc.status, exc.message, exc.param)

    # As vLLM does, a client-chosen X-Request-Id becomes the response id, so that the
    # client can find its requests in the token log.
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    resp_id = response_id(endpoint, request_id)
    if parsed.stream:
        return await _stream(request, parsed, resp_id)

    sim_request = new_engine_request(parsed, resp_id, settings.role)
    if not await _run_to_end(request, sim_request):
        message = "the server stopped before the request finished, retry on a running server"
        return _error(503, message)
    # A decode worker's usage also counts the first token, which the prefill worker generated.
    text_tokens = sim_request.max_tokens - 1 if parsed.prefilled else sim_request.max_tokens
    body = completion_body(
        endpoint, resp_id, settings.model_name, parsed.prompt_tokens, sim_request.max_tokens,
        text_tokens,
    )
    return web.json_response(body)


async def _run_to_end(request: web.Request, sim_request: SimRequest) -> bool:
    """Submit the request, wait until it leaves the engine and return whether it finished.

    When the client disconnects, aiohttp cancels the handler and the finally block frees
    the request's KV. After a normal end the cancel call does nothing.
    """
    scheduler = request.app[SCHEDULER_KEY]
    scheduler.submit(sim_request)
    try:
        await sim_request.done
    finally:
        scheduler.cancel(sim_request)
    return sim_request.state is RequestState.FINISHED


class _EventStream:
    """Writes one request's token events straight to its connection's transport."""

    __slots__ = ("_transport", "_chunked", "_renderer", "final_events")

    def __init__(self, request: web.Request, chunked: bool, renderer: StreamRenderer) -> None:
        self._transport = request.transport
        self._chunked = chunked
        self._renderer = renderer
        self.final_events = b""

    def on_token(self, sim_request: SimRequest) -> bool:
        events = self._renderer.token_events(sim_request.generated_tokens, sim_request.max_tokens)

        # The handler writes the last events with the end of the body, in one write.
        if sim_request.generated_tokens == sim_request.max_tokens:
            self.final_events = events
            return True

        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        if self._chunked:
            transport.write(b"%x\r\n%b\r\n" % (len(events), events))
        else:
            transport.write(events)
        return True


async def _stream(
    request: web.Request, parsed: GenerationRequest, resp_id: str
) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    renderer = StreamRenderer(
        parsed.endpoint, resp_id, settings.model_name, parsed.prompt_tokens, parsed.include_usage,
        parsed.continuous_usage,
    )
    headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    response = web.StreamResponse(headers=headers)

    # The direct transport writes frame their own chunks, so the framing must be known:
    # chunked for HTTP/1.1, and for HTTP/1.0 a body that ends when the connection closes.
    chunked = request.version >= HttpVersion11
    if chunked:
        response.enable_chunked_encoding()
    await response.prepare(request)

    stream = _EventStream(request, chunked, renderer)
    sim_request = new_engine_request(parsed, resp_id, settings.role, stream.on_token)
    finished = await _run_to_end(request, sim_request)

    if finished:
        tail = stream.final_events
    elif sim_request.state is RequestState.ABORTED:
        tail = renderer.error_event(503, "the server stopped before the request finished")
    else:
        # The client is gone. aiohttp ignores the closed connection when it ends the response.
        return response
    try:
        await response.write_eof(tail)
    except ConnectionError:
        logger.debug("Client of %s disconnected before the last events", resp_id)
    return response
