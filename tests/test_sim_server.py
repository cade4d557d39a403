"""The simulated engine's HTTP API, batching and admission, against a server on 127.0.0.1."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from harness.sim.app import SCHEDULER_KEY, ServerSettings, build_app
from harness.sim.model import StepCostModel
from harness.sim.scheduler import EngineLimits, Scheduler

# Steps of 1 ms keep the tests fast. The tests check token and step counts, never times.
FAST_COST = StepCostModel(
    step_overhead_us=1000.0,
    prefill_us_per_token=0.0,
    decode_us_per_seq=0.0,
    context_us_per_token=0.0,
)
POLL_LIMIT_S = 10.0


@dataclass
class Sim:
    url: str
    session: aiohttp.ClientSession
    scheduler: Scheduler


@contextlib.asynccontextmanager
async def sim_server(
    cost: StepCostModel = FAST_COST,
    kv_capacity_tokens: int = 100_000,
    chunked_prefill_size: int = 8192,
    token_log_path: Path | None = None,
) -> AsyncIterator[Sim]:
    settings = ServerSettings(
        model_name="tiny",
        context_length=4096,
        cost=cost,
        limits=EngineLimits(
            max_running_requests=256,
            chunked_prefill_size=chunked_prefill_size,
            kv_capacity_tokens=kv_capacity_tokens,
        ),
        token_log_path=token_log_path,
    )
    app = build_app(settings)
    server = TestServer(app, host="127.0.0.1", handler_cancellation=True)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Sim(f"http://127.0.0.1:{server.port}", session, app[SCHEDULER_KEY])
    finally:
        await server.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


def parse_events(body: bytes) -> list[str]:
    """Split an SSE body into its data payloads."""
    return [event.removeprefix("data: ") for event in body.decode().split("\n\n") if event]


async def post_stream(sim: Sim, path: str, payload: dict) -> list[str]:
    async with sim.session.post(sim.url + path, json=payload) as response:
        assert response.status == 200
        return parse_events(await response.read())


async def read_metrics(sim: Sim) -> dict[str, float]:
    async with sim.session.get(sim.url + "/metrics") as response:
        text = await response.text()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_and_labels, value = line.rsplit(" ", 1)
            values[name_and_labels.split("{")[0]] = float(value)
    return values


async def wait_for_metric(sim: Sim, name: str, expected: float) -> float:
    """Poll /metrics until name equals expected or POLL_LIMIT_S passes, then return its value."""
    loop = asyncio.get_running_loop()
    give_up_s = loop.time() + POLL_LIMIT_S
    while True:
        value = (await read_metrics(sim))[name]
        if value == expected or loop.time() > give_up_s:
            return value
        await asyncio.sleep(0.005)


def completion(max_tokens: int, prompt="one two three four five", **fields) -> dict:
    return {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "stream": True, **fields}


def test_stream_completion_tokens_and_usage():
    async def scenario():
        async with sim_server() as sim:
            payload = completion(4, stream_options={"include_usage": True})
            return await post_stream(sim, "/v1/completions", payload)

    events = run(scenario())
    chunks = [json.loads(event) for event in events[:-1]]
    token_chunks = [chunk for chunk in chunks if chunk["choices"]]
    assert events[-1] == "[DONE]"
    assert [chunk["choices"][0]["text"] for chunk in token_chunks] == [" tok"] * 4
    finish_reasons = [chunk["choices"][0]["finish_reason"] for chunk in token_chunks]
    assert finish_reasons == [None, None, None, "length"]
    # 5 prompt words + 4 tokens = 9
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    assert chunks[-1]["choices"] == []


def test_stream_without_usage_ends_with_done():
    async def scenario():
        async with sim_server() as sim:
            return await post_stream(sim, "/v1/completions", completion(2))

    events = run(scenario())
    assert len(events) == 3
    assert events[-1] == "[DONE]"


def test_chat_stream_role_chunk_first():
    async def scenario():
        async with sim_server() as sim:
            payload = {
                "model": "tiny",
                "messages": [{"role": "user", "content": "hello there"}],
                "max_completion_tokens": 3,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            return await post_stream(sim, "/v1/chat/completions", payload)

    chunks = [json.loads(event) for event in run(scenario())[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [chunk["choices"][0]["delta"] for chunk in chunks[1:4]] == [{"content": " tok"}] * 3
    assert chunks[3]["choices"][0]["finish_reason"] == "length"
    # 2 words + 4 per message = 6 prompt tokens; 6 + 3 = 9
    assert chunks[4]["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9}


def test_stream_continuous_usage_every_chunk():
    async def scenario():
        async with sim_server() as sim:
            options = {"include_usage": True, "continuous_usage_stats": True}
            return await post_stream(sim, "/v1/completions", completion(3, stream_options=options))

    chunks = [json.loads(event) for event in run(scenario())[:-1]]
    # Three token chunks with 1, 2, 3 completion tokens, then the usage chunk with 3.
    assert [chunk["usage"]["completion_tokens"] for chunk in chunks] == [1, 2, 3, 3]
    assert {chunk["usage"]["prompt_tokens"] for chunk in chunks} == {5}


def test_completion_without_stream():
    async def scenario():
        async with sim_server() as sim:
            payload = {"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 2}
            async with sim.session.post(sim.url + "/v1/completions", json=payload) as response:
                return response.status, await response.json()

    status, body = run(scenario())
    assert status == 200
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == " tok tok"
    # 3 token ids + 2 generated = 5
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_models_and_health():
    async def scenario():
        async with sim_server() as sim:
            async with sim.session.get(sim.url + "/health") as health:
                health_status = health.status
            async with sim.session.get(sim.url + "/v1/models") as models:
                return health_status, await models.json()

    health_status, models = run(scenario())
    assert health_status == 200
    assert [model["id"] for model in models["data"]] == ["tiny"]


async def post_error(sim: Sim, path: str, data: bytes) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    async with sim.session.post(sim.url + path, data=data, headers=headers) as response:
        return response.status, await response.json()


def test_errors_status_and_body():
    async def scenario():
        async with sim_server(kv_capacity_tokens=1000) as sim:
            bodies = {
                "bad_json": b"{not json",
                "no_max_tokens": b'{"model": "tiny", "prompt": "a"}',
                "wrong_model": json.dumps(completion(1, model="big")).encode(),
                "context": json.dumps(completion(4092)).encode(),
                "kv": json.dumps(completion(996)).encode(),
            }
            results = {}
            for name, body in bodies.items():
                results[name] = await post_error(sim, "/v1/completions", body)
            return results

    results = run(scenario())
    assert {name: status for name, (status, _) in results.items()} == {
        "bad_json": 400, "no_max_tokens": 400, "wrong_model": 404, "context": 400, "kv": 400,
    }
    assert set(results["bad_json"][1]["error"]) >= {"message", "type", "code"}
    assert results["wrong_model"][1]["error"]["type"] == "not_found_error"
    # 5 prompt words + 4092 = 4097 > 4096 context length
    context_message = results["context"][1]["error"]["message"]
    assert "4097 tokens exceeds the context length of 4096" in context_message
    # 5 + 996 = 1001 > 1000 KV tokens
    kv_message = results["kv"][1]["error"]["message"]
    assert "1001 tokens exceeds the KV cache capacity of 1000" in kv_message


def test_metrics_counters_after_request():
    async def scenario():
        async with sim_server() as sim:
            await post_stream(sim, "/v1/completions", completion(3))
            return await read_metrics(sim)

    metrics = run(scenario())
    assert metrics["sim:prompt_tokens_total"] == 5
    assert metrics["sim:generation_tokens_total"] == 3
    assert metrics["sim:request_success_total"] == 1
    assert metrics["sim:num_requests_running"] == 0
    assert metrics["sim:kv_cache_usage_perc"] == 0


def test_long_prompt_prefills_in_chunks():
    async def scenario():
        async with sim_server(chunked_prefill_size=4) as sim:
            await post_stream(sim, "/v1/completions", completion(2, prompt=list(range(10))))
            return sim.scheduler.stats().steps_total

    # 10 prompt tokens in chunks of 4: 4, 4, 2 (the third step emits token 1), then 1 decode step.
    assert run(scenario()) == 4


def read_token_log(path: Path) -> dict[int, dict]:
    """Map prompt length to the token log entry of the request with that prompt."""
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return {entry["prompt_tokens"]: entry for entry in entries}


def test_concurrent_requests_share_steps(tmp_path):
    log_path = tmp_path / "tokens.jsonl"

    async def scenario():
        async with sim_server(token_log_path=log_path) as sim:
            url = sim.url + "/v1/completions"
            async with sim.session.post(url, json=completion(100, prompt="long " * 8)) as first:
                # Send the second request once the first has its first token, so that the
                # second runs entirely inside the first one's steps.
                await first.content.readuntil(b"\n\n")
                await post_stream(sim, "/v1/completions", completion(3, prompt="short " * 2))
                await first.read()
            return sim.scheduler.stats().steps_total

    steps_total = run(scenario())
    entries = read_token_log(log_path)
    first_emits, second_emits = entries[8]["emit_perf_ns"], entries[2]["emit_perf_ns"]
    assert len(first_emits) == 100
    assert len(second_emits) == 3
    # Every token of the second request was emitted by a step that also emitted one of the
    # first, so the two together took only the first request's 100 steps.
    assert set(second_emits) <= set(first_emits)
    assert steps_total == 100


def test_kv_capacity_queues_second_request(tmp_path):
    log_path = tmp_path / "tokens.jsonl"

    async def scenario():
        # Each request reserves 10 prompt + 200 generated = 210 of the 300 KV tokens.
        async with sim_server(kv_capacity_tokens=300, token_log_path=log_path) as sim:
            url = sim.url + "/v1/completions"
            async with sim.session.post(url, json=completion(200, prompt=list(range(10)))) as first:
                await first.content.readuntil(b"\n\n")
                second_payload = completion(200, prompt="w " * 10)
                second = asyncio.create_task(post_stream(sim, "/v1/completions", second_payload))
                waiting = await wait_for_metric(sim, "sim:num_requests_waiting", 1)
                kv_usage = (await read_metrics(sim))["sim:kv_cache_usage_perc"]
                await first.read()
            await second
            return waiting, kv_usage

    waiting, kv_usage = run(scenario())
    assert waiting == 1
    # 210 / 300 = 0.7 while only the first request is admitted
    assert kv_usage == 0.7
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    # The second request got its first token only after the first request finished.
    assert entries[1]["emit_perf_ns"][0] > entries[0]["emit_perf_ns"][-1]


def test_disconnect_frees_kv():
    async def scenario():
        async with sim_server() as sim:
            url = sim.url + "/v1/completions"
            async with sim.session.post(url, json=completion(1000)) as response:
                await response.content.readuntil(b"\n\n")
                response.close()
            running = await wait_for_metric(sim, "sim:num_requests_running", 0)
            return running, (await read_metrics(sim))

    running, metrics = run(scenario())
    assert running == 0
    assert metrics["sim:kv_cache_usage_perc"] == 0
    assert metrics["sim:request_success_total"] == 0


def test_stop_ends_stream_with_error():
    async def scenario():
        async with sim_server() as sim:
            url = sim.url + "/v1/completions"
            async with sim.session.post(url, json=completion(1000)) as response:
                await response.content.readuntil(b"\n\n")
                await sim.scheduler.stop()
                return parse_events(await response.read())

    events = run(scenario())
    assert events[-1] != "[DONE]"
    assert json.loads(events[-1])["error"]["code"] == 503


def test_requests_after_stop_get_503():
    async def scenario():
        async with sim_server() as sim:
            await sim.scheduler.stop()
            async with sim.session.get(sim.url + "/health") as health:
                health_status = health.status
            payload = {"model": "tiny", "prompt": "a", "max_tokens": 2}
            async with sim.session.post(sim.url + "/v1/completions", json=payload) as response:
                return health_status, response.status

    health_status, completion_status = run(scenario())
    assert health_status == 503
    assert completion_status == 503
