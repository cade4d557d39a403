"""Tests of harness.loadgen.client and runner against a small OpenAI-style server that
this module starts on 127.0.0.1.

The request's "model" field picks how the server responds, so every case runs against
one server. The server runs its own event loop in a thread because run_level() starts
another event loop in the test's thread.
"""

import asyncio
import json
import socket
import threading

import aiohttp
import pytest
from aiohttp import web

from harness.errors import ConfigError
from harness.loadgen.client import Endpoint, PreparedRequest, send_request
from harness.loadgen.runner import LevelSpec, run_level

CHAT_PROMPT_TOKENS = 42


def event(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def text_chunk(text, completion_tokens=None, prompt_tokens=7):
    chunk = {"object": "text_completion", "choices": [{"index": 0, "text": text}]}
    if completion_tokens is not None:
        chunk["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return chunk


def chat_chunk(delta, completion_tokens):
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta}],
        "usage": {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": completion_tokens},
    }


def usage_chunk(prompt_tokens, completion_tokens):
    return {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


class FakeServer:
    """OpenAI-style streaming server in a background thread; counts concurrent requests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []
        self.authorizations: list[str | None] = []

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    def reset(self) -> None:
        self.max_in_flight = 0
        self.bodies.clear()
        self.authorizations.clear()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self.handle)
        app.router.add_post("/v1/chat/completions", self.handle)
        # Cancel a handler when its client disconnects, so that the timeout case ends at once.
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.authorizations.append(request.headers.get("Authorization"))
        scenario = body["model"]

        if scenario == "http500":
            error = {"error": {"message": "model overloaded", "type": "InternalServerError", "code": 500}}
            return web.json_response(error, status=500)
        if scenario == "hang":
            await asyncio.sleep(30)

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        osl = body["max_tokens"]

        if scenario == "plain":
            for i in range(osl):
                await response.write(event(text_chunk("t", i + 1)))
            await response.write(event(usage_chunk(7, osl)))
        elif scenario == "chat":
            await response.write(event(chat_chunk({"role": "assistant", "content": ""}, 0)))
            await response.write(event(chat_chunk({"content": "a"}, 1)))
            await response.write(event(chat_chunk({"content": "bcd"}, 4)))
            await response.write(event(chat_chunk({"reasoning_content": "e"}, 5)))
            await response.write(event(usage_chunk(CHAT_PROMPT_TOKENS, 5)))
        elif scenario == "crlf_no_usage":
            for text in ("x", "y", "z"):
                await response.write(b"data: " + json.dumps(text_chunk(text)).encode() + b"\r\n\r\n")
        elif scenario == "midstream_error":
            await response.write(event(text_chunk("a", 1)))
            await response.write(event(text_chunk("b", 2)))
            await response.write(event({"error": {"message": "engine died", "code": 500}}))
        elif scenario == "no_tokens":
            await response.write(event(chat_chunk({"role": "assistant"}, 0)))
            await response.write(event(usage_chunk(CHAT_PROMPT_TOKENS, 0)))
        elif scenario == "open_after_done":
            await response.write(event(text_chunk("a", 1)))
        elif scenario == "slow":
            await self.stream_slowly(response, body, osl)

        await response.write(b"data: [DONE]\n\n")
        if scenario == "open_after_done":
            await asyncio.sleep(30)
        await response.write_eof()
        return response

    async def stream_slowly(self, response: web.StreamResponse, body: dict, osl: int) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for i in range(osl):
                await asyncio.sleep(0.005)
                await response.write(event(text_chunk("t", i + 1, prompt_tokens=len(body["prompt"]))))
            await response.write(event(usage_chunk(len(body["prompt"]), osl)))
        finally:
            # Counted as finished before [DONE], so the client cannot start its next
            # request while this one still counts.
            self.in_flight -= 1


@pytest.fixture(scope="module")
def server():
    fake = FakeServer()
    fake.start()
    yield fake
    fake.stop()


def send_one(url, kind, model, osl=4, timeout_s=5.0, headers=None):
    async def run():
        endpoint = Endpoint(url=url, kind=kind, timeout_s=timeout_s, headers=headers or {})
        body = json.dumps({"model": model, "prompt": [1, 2, 3], "max_tokens": osl, "stream": True}).encode()
        request = PreparedRequest(request_id=5, warmup=False, target_isl=3, target_osl=osl, body=body)
        async with aiohttp.ClientSession() as session:
            return await send_request(session, endpoint, request, scheduled_perf_ns=0)

    return asyncio.run(run())


def test_client_completions_stream(server):
    record = send_one(server.base_url + "/v1/completions", "completions", "plain", osl=4)

    assert record.error_type is None
    assert record.status_code == 200
    assert record.token_counts == [1, 1, 1, 1]
    assert len(record.token_perf_ns) == 4
    assert record.usage_prompt_tokens == 7
    assert record.usage_completion_tokens == 4


def test_client_timestamps_ordered(server):
    record = send_one(server.base_url + "/v1/completions", "completions", "plain")

    assert record.send_perf_ns <= record.headers_perf_ns
    assert record.headers_perf_ns <= record.token_perf_ns[0]
    assert record.token_perf_ns == sorted(record.token_perf_ns)
    assert record.token_perf_ns[-1] <= record.end_perf_ns


def test_client_chat_role_chunk_not_a_token(server):
    record = send_one(server.base_url + "/v1/chat/completions", "chat", "chat")

    # content "a" (1), "bcd" (usage 1 -> 4), reasoning "e" (4 -> 5); the role-only
    # first chunk and the final usage chunk with empty choices carry no token
    assert record.token_counts == [1, 3, 1]
    assert record.usage_completion_tokens == 5
    assert record.usage_prompt_tokens == CHAT_PROMPT_TOKENS
    assert record.error_type is None


def test_client_crlf_without_usage_counts_one(server):
    record = send_one(server.base_url + "/v1/completions", "completions", "crlf_no_usage")

    assert record.token_counts == [1, 1, 1]
    assert record.usage_completion_tokens is None
    assert record.error_type is None


def test_client_http_500(server):
    record = send_one(server.base_url + "/v1/completions", "completions", "http500")

    assert record.error_type == "http_error"
    assert record.status_code == 500
    assert record.error_message == "HTTP 500: model overloaded"
    assert record.end_perf_ns is not None


def test_client_error_mid_stream(server):
    record = send_one(server.base_url + "/v1/completions", "completions", "midstream_error")

    assert record.error_type == "stream_error"
    assert "engine died" in record.error_message
    # the two tokens before the error stay in the record
    assert record.token_counts == [1, 1]


def test_client_no_tokens(server):
    record = send_one(server.base_url + "/v1/chat/completions", "chat", "no_tokens")

    assert record.error_type == "no_tokens"
    assert record.usage_completion_tokens == 0


def test_client_timeout(server):
    record = send_one(server.base_url + "/v1/completions", "completions", "hang", timeout_s=0.2)

    assert record.error_type == "timeout"
    assert "timeout_s=0.2" in record.error_message


def test_client_timeout_after_done_succeeds(server):
    record = send_one(server.base_url + "/v1/completions", "completions", "open_after_done", timeout_s=0.2)

    assert record.error_type is None
    assert record.token_counts == [1]


def test_client_connection_refused():
    # Bind a port and close it, so that nothing listens there.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    record = send_one(f"http://127.0.0.1:{port}/v1/completions", "completions", "plain")

    assert record.error_type == "connection_error"
    assert record.status_code is None


def make_spec(base_url, **overrides):
    values = dict(
        base_url=base_url,
        model="slow",
        endpoint="completions",
        isl=16,
        # 8 tokens at 5 ms each keep every request open for 40 ms or more, so the first
        # four requests overlap even on a slow machine.
        osl=8,
        concurrency=4,
        num_requests=12,
        warmup_requests=4,
        timeout_s=10.0,
        vocab_size=1000,
        seed=0,
        num_gpus=1,
        slo_ttft_ms=None,
        slo_itl_ms=None,
        slo_percentile=90,
        api_key="secret-key",
    )
    values.update(overrides)
    return LevelSpec(**values)


@pytest.fixture(scope="module")
def level(server):
    server.reset()
    calls = []
    result = run_level(make_spec(server.base_url), progress=lambda done, total: calls.append((done, total)))
    return result, calls, list(server.bodies), list(server.authorizations), server.max_in_flight


def test_runner_keeps_concurrency_in_flight(level):
    *_, max_in_flight = level

    assert max_in_flight == 4


def test_runner_records_warmup_then_measured(level):
    result, *_ = level

    assert [r.request_id for r in result.records] == list(range(16))
    assert [r.warmup for r in result.records] == [True] * 4 + [False] * 12
    assert len(result.frame) == 16


def test_runner_summary_of_measured(level):
    result, *_ = level

    assert result.summary["completed"] == 12
    assert result.summary["failed"] == 0
    assert result.summary["level"] == "c4"
    assert result.summary["flags"] == []


def test_runner_progress_counts_measured(level):
    _, calls, *_ = level

    assert len(calls) == 12
    assert calls[-1] == (12, 12)


def test_runner_prompts_unique_prefix(level):
    _, _, bodies, *_ = level

    assert all(len(body["prompt"]) == 16 for body in bodies)
    assert len({tuple(body["prompt"][:8]) for body in bodies}) == 16


def test_runner_sends_bearer_key(level):
    _, _, _, authorizations, _ = level

    assert set(authorizations) == {"Bearer secret-key"}


def test_spec_repr_hides_key(server):
    assert "secret-key" not in repr(make_spec(server.base_url))


def test_spec_accepts_v1_base_url():
    spec = make_spec("http://127.0.0.1:8000/v1/", endpoint="chat")

    assert spec.url == "http://127.0.0.1:8000/v1/chat/completions"


def test_spec_rejects_zero_concurrency():
    with pytest.raises(ConfigError, match="concurrency=0"):
        make_spec("http://127.0.0.1:8000", concurrency=0)


def test_spec_rejects_unknown_endpoint():
    with pytest.raises(ConfigError, match="'embeddings'"):
        make_spec("http://127.0.0.1:8000", endpoint="embeddings")
