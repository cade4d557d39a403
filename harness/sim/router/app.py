"""aiohttp application of the router: OpenAI routes in front of prefill and decode workers.

GET /health returns 200 only when every worker's /health returns 200, and its JSON body
gives each worker's state. GET /v1/models returns the router's model once every worker
serves it, with the smallest context length among them.
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from harness.sim.openai_format import Endpoint, error_body, models_body
from harness.sim.prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE
from harness.sim.protocol import InvalidRequest, parse_generation_request
from harness.sim.roles import KV_HOLD_FIELD, PREFILLED_FIELD
from harness.sim.router.context import RouterContext, describe
from harness.sim.router.metrics import render_router_metrics
from harness.sim.router.pool import Policy, WorkerPool
from harness.sim.router.relay import relay
from harness.sim.router.transfer import KvTransferModel
from harness.sim.token_log import TokenLog

logger = logging.getLogger(__name__)

MAX_REQUEST_BODY_BYTES = 64 * 1024 * 1024
# Worker calls have no total timeout, because a long generation streams for minutes.
CONNECT_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class RouterSettings:
    model_name: str
    prefill_urls: tuple[str, ...]
    decode_urls: tuple[str, ...]
    policy: Policy
    transfer: KvTransferModel
    token_log_path: Path | None = None


SETTINGS_KEY = web.AppKey("router_settings", RouterSettings)
CONTEXT_KEY = web.AppKey("router_context", RouterContext)


def build_router_app(settings: RouterSettings) -> web.Application:
    """Build the router, whose HTTP session starts and stops with the application.

    Run it with handler_cancellation=True, so that a client that disconnects also ends
    the router's requests to the workers.
    """
    app = web.Application(client_max_size=MAX_REQUEST_BODY_BYTES)
    app[SETTINGS_KEY] = settings
    app.cleanup_ctx.append(_context)
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/chat/completions", _chat_completions)
    return app


async def _context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS_KEY]
    # limit=0 lifts aiohttp's default cap of 100 connections, which would queue requests
    # in the router at high concurrency.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S),
    )
    token_log = None if settings.token_log_path is None else TokenLog(settings.token_log_path)
    app[CONTEXT_KEY] = RouterContext(
        model_name=settings.model_name,
        session=session,
        prefill_pool=WorkerPool("prefill", list(settings.prefill_urls), settings.policy),
        decode_pool=WorkerPool("decode", list(settings.decode_urls), settings.policy),
        transfer=settings.transfer,
        token_log=token_log,
    )
    yield
    await app[CONTEXT_KEY].close()


def _error(status: int, message: str, param: str | None = None) -> web.Response:
    return web.json_response(error_body(status, message, param), status=status)


async def _get_json(
    session: aiohttp.ClientSession, url: str
) -> tuple[int | None, object | None, str]:
    """GET url and return (status, decoded JSON or None, error text); status None on failure."""
    try:
        timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
        async with session.get(url, timeout=timeout) as response:
            text = await response.text()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return None, None, describe(exc)
    try:
        return response.status, json.loads(text), ""
    except ValueError:
        return response.status, None, text[:200]


async def _health(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    pools = (ctx.prefill_pool, ctx.decode_pool)
    probes = [(pool.role, url) for pool in pools for url in pool.urls]
    results = await asyncio.gather(*(_get_json(ctx.session, url + "/health") for _, url in probes))

    workers: dict[str, dict[str, str]] = {pool.role: {} for pool in pools}
    healthy = True
    for (role, url), (status, _, error_text) in zip(probes, results):
        if status == 200:
            workers[role][url] = "healthy"
            continue
        healthy = False
        if status is None:
            workers[role][url] = f"unreachable: {error_text}"
        else:
            workers[role][url] = f"HTTP {status}"
        logger.debug("Health check of %s worker %s failed: %s", role, url, workers[role][url])
    body = {"healthy": healthy, "workers": workers}
    return web.json_response(body, status=200 if healthy else 503)


async def _models(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    urls = [*ctx.prefill_pool.urls, *ctx.decode_pool.urls]
    results = await asyncio.gather(*(_get_json(ctx.session, url + "/v1/models") for url in urls))

    context_lengths = []
    for url, (status, payload, error_text) in zip(urls, results):
        models = payload.get("data") if isinstance(payload, dict) else None
        served = [model for model in models or [] if isinstance(model, dict)]
        match = [model for model in served if model.get("id") == ctx.model_name]
        if status != 200 or not match:
            names = [model.get("id") for model in served]
            detail = error_text or f"HTTP {status}, models {names}"
            logger.debug("Model list of worker %s lacks %s: %s", url, ctx.model_name, detail)
            return _error(
                503,
                f"worker {url} does not serve model {ctx.model_name!r} ({detail}). Start it "
                "with the router's --model-name, or wait until it is up",
            )
        context_lengths.append(match[0].get("max_model_len", 0))
    body = models_body(ctx.model_name, min(context_lengths), int(time.time()))
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT_KEY]
    text = render_router_metrics(ctx.stats, [ctx.prefill_pool, ctx.decode_pool], ctx.model_name)
    return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})


async def _completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, Endpoint.COMPLETIONS)


async def _chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, Endpoint.CHAT)


async def _generate(request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
    ctx = request.app[CONTEXT_KEY]
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        logger.debug("Rejected %s: body is not valid JSON: %s", request.path, exc)
        return _error(400, f"request body is not valid JSON: {exc}")
    for field_name in (PREFILLED_FIELD, KV_HOLD_FIELD):
        if isinstance(body, dict) and field_name in body:
            logger.debug("Rejected %s: the client set %s", request.path, field_name)
            message = f"{field_name} is set by the router for its workers. Remove it"
            return _error(400, message, field_name)
    try:
        parsed = parse_generation_request(endpoint, body)
    except InvalidRequest as exc:
        logger.debug("Rejected %s with status %d: %s", request.path, exc.status, exc.message)
        return _error(exc.status, exc.message, exc.param)

    if parsed.model != ctx.model_name:
        logger.debug("Rejected %s: model %r not found", request.path, parsed.model)
        message = f"model {parsed.model!r} not found. This router serves {ctx.model_name!r}"
        return _error(404, message, "model")

    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    return await relay(ctx, request, parsed, body, request_id)
