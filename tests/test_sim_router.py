"""The simulated engine's router end to end, with prefill and decode workers on 127.0.0.1."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from harness.loadgen.prometheus_text import parse_exposition
from harness.sim.app import SCHEDULER_KEY, ServerSettings, build_app
from harness.sim.model import StepCostModel
from harness.sim.roles import Role
from harness.sim.router.app import RouterSettings, build_router_app
from harness.sim.router.pool import Policy
from harness.sim.router.transfer import KvTransferModel
from harness.sim.scheduler import EngineLimits

# Steps of 1 ms keep the tests fast. The tests check token counts and the order of
# events, never durations.
FAST_COST = StepCostModel(
    step_overhead_us=1000.0,
    prefill_us_per_token=0.0,
    decode_us_per_seq=0.0,
    context_us_per_token=0.0,
)
# Prefill of 10 ms per token, so that a long prompt keeps a worker busy for seconds.
SLOW_PREFILL_COST = StepCostModel(
    step_overhead_us=1000.0,
    prefill_us_per_token=10_000.0,
    decode_us_per_seq=0.0,
    context_us_per_token=0.0,
)
NO_TRANSFER = KvTransferModel(kv_bytes_per_token=0, bandwidth_gbps=1.0, latency_us=0.0)
POLL_LIMIT_S = 10.0


@dataclass
class Cluster:
    url: str
    session: aiohttp.ClientSession
    prefill: list[TestServer]
    decode: list[TestServer]
    prefill_urls: list[str]
    decode_urls: list[str]
    tmp_path: Path

    def token_log(self, name: str) -> list[dict]:
        path = self.tmp_path / f"{name}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


def worker_app(role: Role, cost: StepCostModel, token_log_path: Path):
    settings = ServerSettings(
        model_name="tiny",
        context_length=4096,
        cost=cost,
        limits=EngineLimits(
            max_running_requests=256, chunked_prefill_size=8192, kv_capacity_tokens=100_000
        ),
        token_log_path=token_log_path,
        role=role,
    )
    return build_app(settings)


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path,
    prefill_costs: tuple[StepCostModel, ...] = (FAST_COST,),
    decode_count: int = 1,
    policy: Policy = Policy.ROUND_ROBIN,
    transfer: KvTransferModel = NO_TRANSFER,
) -> AsyncIterator[Cluster]:
    """Start the workers and the router. The token logs are router, prefill0, ..., decode0, ..."""
    servers: list[TestServer] = []
    try:
        prefill, decode = [], []
        roles = [(Role.PREFILL, cost) for cost in prefill_costs]
        roles += [(Role.DECODE, FAST_COST)] * decode_count
        for role, cost in roles:
            pool = prefill if role is Role.PREFILL else decode
            log_path = tmp_path / f"{role.value}{len(pool)}.jsonl"
            app = worker_app(role, cost, log_path)
            server = TestServer(app, host="127.0.0.1", handler_cancellation=True)
            await server.start_server()
            servers.append(server)
            pool.append(server)

        # A closed TestServer sets its port to None, so the URLs are stored separately.
        prefill_urls = [f"http://127.0.0.1:{server.port}" for server in prefill]
        decode_urls = [f"http://127.0.0.1:{server.port}" for server in decode]
        settings = RouterSettings(
            model_name="tiny",
            prefill_urls=tuple(prefill_urls),
            decode_urls=tuple(decode_urls),
            policy=policy,
            transfer=transfer,
            token_log_path=tmp_path / "router.jsonl",
        )
        router = TestServer(build_router_app(settings), host="127.0.0.1", handler_cancellation=True)
        await router.start_server()
        servers.insert(0, router)
        async with aiohttp.ClientSession() as session:
            yield Cluster(
                f"http://127.0.0.1:{router.port}", session, prefill, decode, prefill_urls,
                decode_urls, tmp_path,
            )
    finally:
        for server in servers:
            await server.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=30))


def parse_events(body: bytes) -> list[str]:
    return [event.removeprefix("data: ") for event in body.decode().split("\n\n") if event]


async def post(url: str, session: aiohttp.ClientSession, payload: dict) -> tuple[int, bytes]:
    async with session.post(url, json=payload) as response:
        return response.status, await response.read()


async def read_samples(session: aiohttp.ClientSession, url: str) -> dict[tuple, float]:
    """Map (name, sorted label items) to the value of every sample of url's /metrics."""
    async with session.get(url + "/metrics") as response:
        exposition = parse_exposition(await response.text())
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for sample in exposition.samples
    }


def metric(samples: dict[tuple, float], name: str, **labels: str) -> float:
    (value,) = [
        value for (sample_name, items), value in samples.items()
        if sample_name == name and set(labels.items()) <= set(items)
    ]
    return value


async def wait_for_metric(
    session: aiohttp.ClientSession, url: str, name: str, expected: float, **labels: str
) -> float:
    loop = asyncio.get_running_loop()
    give_up_s = loop.time() + POLL_LIMIT_S
    while True:
        value = metric(await read_samples(session, url), name, **labels)
        if value == expected or loop.time() > give_up_s:
            return value
        await asyncio.sleep(0.005)


def completion(max_tokens: int, prompt="one two three four five", **fields) -> dict:
    return {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, **fields}


def test_router_stream_tokens_and_usage(tmp_path):
    async def scenario():
        async with cluster(tmp_path) as c:
            payload = completion(5, stream=True, stream_options={"include_usage": True})
            status, body = await post(c.url + "/v1/completions", c.session, payload)
            prefill_samples = await read_samples(c.session, c.prefill_urls[0])
            decode_samples = await read_samples(c.session, c.decode_urls[0])
            return status, parse_events(body), prefill_samples, decode_samples

    status, events, prefill_samples, decode_samples = run(scenario())
    chunks = [json.loads(event) for event in events[:-1]]
    token_chunks = [chunk for chunk in chunks if chunk["choices"]]
    assert status == 200
    assert events[-1] == "[DONE]"
    assert [chunk["choices"][0]["text"] for chunk in token_chunks] == [" tok"] * 5
    finish_reasons = [chunk["choices"][0]["finish_reason"] for chunk in token_chunks]
    assert finish_reasons == [None, None, None, None, "length"]
    # 5 prompt words + 5 tokens = 10
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    # The prefill worker prefilled 5 tokens and generated token 1, and decode generated 2 to 5.
    assert metric(prefill_samples, "sim:prompt_tokens_total") == 5
    assert metric(prefill_samples, "sim:generation_tokens_total") == 1
    assert metric(decode_samples, "sim:prompt_tokens_total") == 0
    assert metric(decode_samples, "sim:generation_tokens_total") == 4
    assert metric(prefill_samples, "sim:num_requests_kv_held") == 0


def test_router_chat_continuous_usage(tmp_path):
    async def scenario():
        async with cluster(tmp_path) as c:
            payload = {
                "model": "tiny",
                "messages": [{"role": "user", "content": "hello there"}],
                "max_completion_tokens": 3,
                "stream": True,
                "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            }
            return await post(c.url + "/v1/chat/completions", c.session, payload)

    status, body = run(scenario())
    chunks = [json.loads(event) for event in parse_events(body)[:-1]]
    assert status == 200
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [chunk["choices"][0]["delta"] for chunk in chunks[1:4]] == [{"content": " tok"}] * 3
    # The role chunk, three token chunks, then the usage chunk.
    assert [chunk["usage"]["completion_tokens"] for chunk in chunks] == [0, 1, 2, 3, 3]
    # 2 words + 4 per message = 6 prompt tokens, counted by the prefill worker
    assert {chunk["usage"]["prompt_tokens"] for chunk in chunks} == {6}
    assert chunks[0]["id"].startswith("chatcmpl-")


def test_router_completion_without_stream(tmp_path):
    async def scenario():
        async with cluster(tmp_path) as c:
            payload = completion(3, prompt=[1, 2, 3, 4])
            status, body = await post(c.url + "/v1/completions", c.session, payload)
            return status, json.loads(body), c.token_log("router")

    status, body, router_log = run(scenario())
    assert status == 200
    assert body["choices"][0]["text"] == " tok tok tok"
    # 4 token ids + 3 generated = 7
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert len(router_log[0]["emit_perf_ns"]) == 3


def test_router_one_token_skips_decode(tmp_path):
    async def scenario():
        async with cluster(tmp_path) as c:
            payload = completion(1, stream=True)
            status, body = await post(c.url + "/v1/completions", c.session, payload)
            decode_samples = await read_samples(c.session, c.decode_urls[0])
            return status, parse_events(body), decode_samples, c.token_log("router")

    status, events, decode_samples, router_log = run(scenario())
    assert status == 200
    assert len(events) == 2
    assert json.loads(events[0])["choices"][0]["finish_reason"] == "length"
    assert metric(decode_samples, "sim:request_success_total") == 0
    assert router_log[0]["decode_url"] is None


def test_router_round_robin_alternates(tmp_path):
    async def scenario():
        async with cluster(tmp_path, prefill_costs=(FAST_COST, FAST_COST)) as c:
            for _ in range(4):
                await post(c.url + "/v1/completions", c.session, completion(2, stream=True))
            urls = c.prefill_urls
            return urls, c.token_log("router")

    urls, router_log = run(scenario())
    assert [entry["prefill_url"] for entry in router_log] == [urls[0], urls[1], urls[0], urls[1]]


def test_router_least_loaded_picks_idle(tmp_path):
    async def scenario():
        # Prefill worker 0 prefills 1000 tokens at 10 ms each, so the first request stays
        # on it for 10 s, and is cancelled long before.
        costs = (SLOW_PREFILL_COST, FAST_COST)
        async with cluster(tmp_path, prefill_costs=costs, policy=Policy.LEAST_LOADED) as c:
            urls = c.prefill_urls
            busy_payload = completion(2, prompt=[7] * 1000, stream=True)
            busy = asyncio.create_task(post(c.url + "/v1/completions", c.session, busy_payload))
            busy_in_flight = await wait_for_metric(
                c.session, c.url, "sim_router:worker_requests_in_flight", 1, worker=urls[0]
            )
            stage_in_flight = metric(
                await read_samples(c.session, c.url), "sim_router:requests_in_flight",
                stage="prefill",
            )
            # Round robin would send the second of these to worker 0.
            for _ in range(2):
                await post(c.url + "/v1/completions", c.session, completion(2, stream=True))
            busy.cancel()
            return urls, busy_in_flight, stage_in_flight, c.token_log("router")

    urls, busy_in_flight, stage_in_flight, router_log = run(scenario())
    assert busy_in_flight == 1
    assert stage_in_flight == 1
    assert [entry["prefill_url"] for entry in router_log] == [urls[1], urls[1]]


def test_router_transfer_time_applied(tmp_path):
    # 500 prompt tokens * 100_000 bytes / 10 GB/s = 5_000_000 ns, + 2000 us = 7_000_000 ns
    transfer = KvTransferModel(kv_bytes_per_token=100_000, bandwidth_gbps=10.0, latency_us=2000.0)
    expected_transfer_ns = 7_000_000

    async def scenario():
        async with cluster(tmp_path, transfer=transfer) as c:
            payload = completion(3, prompt=[5] * 500, stream=True)
            status, _ = await post(c.url + "/v1/completions", c.session, payload)
            return status, c.token_log("router"), c.token_log("prefill0"), c.token_log("decode0")

    status, router_log, prefill_log, decode_log = run(scenario())
    (entry,) = router_log
    first_emit_ns = entry["emit_perf_ns"][0]
    assert status == 200
    assert entry["kv_transfer_ns"] == expected_transfer_ns
    assert first_emit_ns >= entry["prefill_done_perf_ns"] + expected_transfer_ns
    # The prefill worker's own stamp of its token, from its token log, bounds it too.
    assert first_emit_ns >= prefill_log[0]["emit_perf_ns"][0] + expected_transfer_ns
    assert len(prefill_log[0]["emit_perf_ns"]) == 1
    assert len(decode_log[0]["emit_perf_ns"]) == 2
    assert entry["request_id"] == prefill_log[0]["request_id"] == decode_log[0]["request_id"]


def test_router_health_false_while_worker_down(tmp_path):
    async def scenario():
        async with cluster(tmp_path) as c:
            async with c.session.get(c.url + "/health") as response:
                up_status = response.status
            await c.decode[0].close()
            async with c.session.get(c.url + "/health") as response:
                down_status, down_body = response.status, await response.json()
            payload = completion(3, stream=True)
            stream_status, body = await post(c.url + "/v1/completions", c.session, payload)
            kv_held = await wait_for_metric(
                c.session, c.prefill_urls[0], "sim:num_requests_kv_held", 0
            )
            return up_status, down_status, down_body, c.decode_urls[0], stream_status, body, kv_held

    up_status, down_status, down_body, decode_url, stream_status, body, kv_held = run(scenario())
    assert up_status == 200
    assert down_status == 503
    assert down_body["healthy"] is False
    assert down_body["workers"]["decode"][decode_url].startswith("unreachable")
    assert stream_status == 502
    assert f"decode worker {decode_url} failed" in json.loads(body)["error"]["message"]
    # The router released the prefill worker's KV although the decode worker is gone.
    assert kv_held == 0


def test_router_decode_error_mid_stream(tmp_path):
    async def scenario():
        async with cluster(tmp_path) as c:
            payload = completion(2000, stream=True)
            async with c.session.post(c.url + "/v1/completions", json=payload) as response:
                await response.content.readuntil(b"\n\n")
                await c.decode[0].app[SCHEDULER_KEY].stop()
                events = parse_events(await response.read())
            samples = await read_samples(c.session, c.url)
            return events, c.decode_urls[0], samples

    events, decode_url, samples = run(scenario())
    error = json.loads(events[-1])["error"]
    assert events[-1] != "[DONE]"
    assert error["code"] == 503
    assert f"decode worker {decode_url} ended its stream with an error" in error["message"]
    assert metric(samples, "sim_router:request_failure_total") == 1


def test_router_models_and_rejections(tmp_path):
    async def scenario():
        async with cluster(tmp_path) as c:
            async with c.session.get(c.url + "/v1/models") as response:
                models = await response.json()
            url = c.url + "/v1/completions"
            wrong_model = await post(url, c.session, completion(2, model="big"))
            internal_field = await post(url, c.session, completion(2, harness_prefilled=True))
            no_max_tokens = await post(url, c.session, {"model": "tiny", "prompt": "a"})
            return models, wrong_model, internal_field, no_max_tokens

    models, wrong_model, internal_field, no_max_tokens = run(scenario())
    assert [(model["id"], model["max_model_len"]) for model in models["data"]] == [("tiny", 4096)]
    assert wrong_model[0] == 404
    assert internal_field[0] == 400
    assert json.loads(internal_field[1])["error"]["param"] == "harness_prefilled"
    assert no_max_tokens[0] == 400


def test_router_metrics_counters(tmp_path):
    # 5 prompt tokens * 1000 bytes / 1 GB/s = 5000 ns, + 1000 us = 1_005_000 ns per request
    transfer = KvTransferModel(kv_bytes_per_token=1000, bandwidth_gbps=1.0, latency_us=1000.0)

    async def scenario():
        async with cluster(tmp_path, transfer=transfer) as c:
            for _ in range(2):
                await post(c.url + "/v1/completions", c.session, completion(3, stream=True))
            async with c.session.get(c.url + "/metrics") as response:
                return parse_exposition(await response.text())

    exposition = run(scenario())
    values = {
        (sample.name, sample.labels.get("stage")): sample.value for sample in exposition.samples
    }
    assert {sample.labels["role"] for sample in exposition.samples} == {"router"}
    assert values[("sim_router:requests_total", None)] == 2
    assert values[("sim_router:request_success_total", None)] == 2
    # 2 requests * 5 prompt words = 10, and 2 * 3 tokens = 6
    assert values[("sim_router:prompt_tokens_total", None)] == 10
    assert values[("sim_router:generation_tokens_total", None)] == 6
    # 2 * 1_005_000 ns = 0.00201 s
    assert values[("sim_router:kv_transfer_seconds_total", None)] == 0.00201
    for stage in ("prefill", "transfer", "decode"):
        assert values[("sim_router:requests_in_flight", stage)] == 0
