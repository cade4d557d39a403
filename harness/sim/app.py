"""aiohttp application of the simulated engine: OpenAI routes, health and metrics.

Streamed tokens are written by the scheduler's step loop straight to each connection's
transport, framed as HTTP/1.1 chunks, so a step costs one socket write per stream and no
task switch. The handler task only opens the response and, when the request ends, writes
the last events together with the end of the body.
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
from harness.sim.scheduler import EngineLimits, Scheduler
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
    return app


async def _scheduler_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    token_log = None if settings.token_log_path is None else TokenLog(settings.token_log_path)
    scheduler = Scheduler(settings.cost, settings.limits, token_log)
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
    text = render_metrics(request.app[SCHEDULER_KEY].stats(), request.app[SETTINGS_KEY].model_name)
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


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
        _check_fits(parsed, settings)
    except InvalidRequest as exc:
        logger.debug("Rejected %s with status %d: %s", request.path, exc.status, exc.message)
        return _error(exc.status, exc.message, exc.param)

    # As vLLM does, a client-chosen X-Request-Id becomes the response id, so that the
    # client can find its requests in the token log.
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    resp_id = response_id(endpoint, request_id)
    if parsed.stream:
        return await _stream(request, parsed, resp_id)

    sim_request = SimRequest(resp_id, parsed.prompt_tokens, parsed.max_tokens)
    if not await _run_to_end(request, sim_request):
        message = "the server stopped before the request finished, retry on a running server"
        return _error(503, message)
    body = completion_body(
        endpoint, resp_id, settings.model_name, parsed.prompt_tokens, parsed.max_tokens
    )
    return web.json_response(body)


def _check_fits(parsed: GenerationRequest, settings: ServerSettings) -> None:
    """Raise InvalidRequest for a wrong model or a request larger than the engine."""
    if parsed.model != settings.model_name:
        raise InvalidRequest(
            f"model {parsed.model!r} not found. This server serves {settings.model_name!r}",
            "model",
            status=404,
        )

    total_tokens = parsed.prompt_tokens + parsed.max_tokens
    limits = (
        ("context length", settings.context_length),
        ("KV cache capacity", settings.limits.kv_capacity_tokens),
    )
    for limit_name, limit_tokens in limits:
        if total_tokens > limit_tokens:
            raise InvalidRequest(
                f"prompt ({parsed.prompt_tokens} tokens) + max_tokens ({parsed.max_tokens}) = "
                f"{total_tokens} tokens exceeds the {limit_name} of {limit_tokens} tokens. "
                "Shorten the prompt or lower max_tokens",
                "max_tokens",
            )


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
    sim_request = SimRequest(resp_id, parsed.prompt_tokens, parsed.max_tokens, stream.on_token)
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
