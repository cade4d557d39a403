"""Prefill and decode roles of the simulated engine, against servers on 127.0.0.1."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp.test_utils import TestServer

from harness.loadgen.prometheus_text import parse_exposition
from harness.sim.app import SCHEDULER_KEY, ServerSettings, build_app
from harness.sim.model import StepCostModel
from harness.sim.roles import Role
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
    role: Role,
    kv_capacity_tokens: int = 100_000,
    chunked_prefill_size: int = 8192,
    kv_hold_timeout_s: float = 60.0,
    cost: StepCostModel = FAST_COST,
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
        role=role,
        kv_hold_timeout_s=kv_hold_timeout_s,
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
    return [event.removeprefix("data: ") for event in body.decode().split("\n\n") if event]


async def post(sim: Sim, payload: dict, path: str = "/v1/completions") -> tuple[int, bytes]:
    async with sim.session.post(sim.url + path, json=payload) as response:
        return response.status, await response.read()


async def read_metrics(sim: Sim) -> dict[str, float]:
    async with sim.session.get(sim.url + "/metrics") as response:
        exposition = parse_exposition(await response.text())
    return {sample.name: sample.value for sample in exposition.samples}


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
    return {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, **fields}


def prefilled(prompt_tokens: int, max_tokens: int, **fields) -> dict:
    return {
        "model": "tiny", "harness_prefilled": True, "prompt_tokens": prompt_tokens,
        "max_tokens": max_tokens, **fields,
    }


def test_prefill_role_generates_one_token():
    async def scenario():
        async with sim_server(Role.PREFILL) as sim:
            payload = completion(10, stream=True, stream_options={"include_usage": True})
            status, body = await post(sim, payload)
            return status, parse_events(body), await read_metrics(sim)

    status, events, metrics = run(scenario())
    chunks = [json.loads(event) for event in events[:-1]]
    assert status == 200
    assert events[-1] == "[DONE]"
    assert [chunk["choices"][0]["text"] for chunk in chunks if chunk["choices"]] == [" tok"]
    # 5 prompt words + 1 generated token, whatever max_tokens the request sets
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    assert metrics["sim:prompt_tokens_total"] == 5
    assert metrics["sim:generation_tokens_total"] == 1
    assert metrics["sim:kv_cache_usage_perc"] == 0


def test_prefill_kv_hold_until_release():
    async def scenario():
        async with sim_server(Role.PREFILL, kv_capacity_tokens=1000) as sim:
            status, body = await post(sim, completion(10, harness_kv_hold=True))
            before = await read_metrics(sim)
            release = {"request_id": json.loads(body)["id"]}
            async with sim.session.post(sim.url + "/harness/kv_release", json=release) as first:
                first_status = first.status
            after = await read_metrics(sim)
            async with sim.session.post(sim.url + "/harness/kv_release", json=release) as second:
                second_status, second_body = second.status, await second.json()
            return status, before, first_status, after, second_status, second_body

    status, before, first_status, after, second_status, second_body = run(scenario())
    assert status == 200
    assert before["sim:num_requests_kv_held"] == 1
    assert before["sim:num_requests_running"] == 0
    # 5 prompt tokens + 1 generated token held, of 1000
    assert before["sim:kv_cache_usage_perc"] == 0.006
    assert first_status == 200
    assert after["sim:num_requests_kv_held"] == 0
    assert after["sim:kv_cache_usage_perc"] == 0
    assert second_status == 404
    assert "released already" in second_body["error"]["message"]


def test_prefill_kv_hold_timeout_frees_kv():
    async def scenario():
        async with sim_server(Role.PREFILL, kv_hold_timeout_s=0.05) as sim:
            await post(sim, completion(10, harness_kv_hold=True))
            kv_held = await wait_for_metric(sim, "sim:num_requests_kv_held", 0)
            return kv_held, await read_metrics(sim)

    kv_held, metrics = run(scenario())
    assert kv_held == 0
    assert metrics["sim:kv_hold_timeouts_total"] == 1
    assert metrics["sim:kv_cache_usage_perc"] == 0


def test_prefill_release_admits_waiting_request():
    async def scenario():
        # The held request keeps 600 prompt + 1 of the 1000 KV tokens, so the second
        # request (600 + 1) waits until the release.
        async with sim_server(Role.PREFILL, kv_capacity_tokens=1000) as sim:
            _, body = await post(sim, completion(1, prompt=[1] * 600, harness_kv_hold=True))
            second = asyncio.create_task(post(sim, completion(1, prompt=[2] * 600)))
            waiting = await wait_for_metric(sim, "sim:num_requests_waiting", 1)
            release = {"request_id": json.loads(body)["id"]}
            async with sim.session.post(sim.url + "/harness/kv_release", json=release):
                pass
            second_status, _ = await second
            return waiting, second_status

    waiting, second_status = run(scenario())
    assert waiting == 1
    assert second_status == 200


def test_decode_role_rejects_ordinary_request():
    async def scenario():
        async with sim_server(Role.DECODE) as sim:
            return await post(sim, completion(4, stream=True))

    status, body = run(scenario())
    error = json.loads(body)["error"]
    assert status == 400
    assert error["param"] == "harness_prefilled"
    assert "serves only requests prefilled elsewhere" in error["message"]


def test_decode_role_serves_prefilled_without_prefill():
    async def scenario():
        async with sim_server(Role.DECODE, chunked_prefill_size=100) as sim:
            options = {"include_usage": True}
            payload = prefilled(1000, 4, stream=True, stream_options=options)
            status, body = await post(sim, payload)
            return status, parse_events(body), await read_metrics(sim)

    status, events, metrics = run(scenario())
    chunks = [json.loads(event) for event in events[:-1]]
    assert status == 200
    # The prefill worker generated token 1, so the decode worker streams tokens 2 to 4.
    assert len([chunk for chunk in chunks if chunk["choices"]]) == 3
    # usage counts every token of the request: 1000 + 4 = 1004
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 1000, "completion_tokens": 4, "total_tokens": 1004,
    }
    # A prefill of 1000 tokens in chunks of 100 would take 10 steps, but decode takes 3.
    assert metrics["sim:steps_total"] == 3
    assert metrics["sim:prompt_tokens_total"] == 0
    assert metrics["sim:generation_tokens_total"] == 3


def test_decode_role_non_stream_text():
    async def scenario():
        async with sim_server(Role.DECODE) as sim:
            return await post(sim, prefilled(20, 3, messages=[]), "/v1/chat/completions")

    status, body = run(scenario())
    reply = json.loads(body)
    assert status == 200
    assert reply["choices"][0]["message"]["content"] == " tok tok"
    # 20 + 3 = 23
    assert reply["usage"] == {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23}


def test_decode_role_kv_capacity_queues():
    async def scenario():
        # Each request reserves 100 prompt + 100 generated = 200 of the 300 KV tokens.
        async with sim_server(Role.DECODE, kv_capacity_tokens=300) as sim:
            first = asyncio.create_task(post(sim, prefilled(100, 100, stream=True)))
            await wait_for_metric(sim, "sim:num_requests_running", 1)
            second = asyncio.create_task(post(sim, prefilled(100, 100, stream=True)))
            waiting = await wait_for_metric(sim, "sim:num_requests_waiting", 1)
            statuses = [(await first)[0], (await second)[0]]
            return waiting, statuses

    waiting, statuses = run(scenario())
    assert waiting == 1
    assert statuses == [200, 200]


def test_roles_reject_wrong_handoff_field():
    async def scenario():
        results = {}
        async with sim_server(Role.DECODE) as sim:
            results["decode_one_token"] = await post(sim, prefilled(5, 1))
            no_prompt_tokens = completion(4, harness_prefilled=True)
            results["decode_no_prompt_tokens"] = await post(sim, no_prompt_tokens)
            results["decode_kv_hold"] = await post(sim, prefilled(5, 4, harness_kv_hold=True))
        async with sim_server(Role.AGGREGATED) as sim:
            results["aggregated_prefilled"] = await post(sim, prefilled(5, 4))
            results["aggregated_kv_hold"] = await post(sim, completion(4, harness_kv_hold=True))
        async with sim_server(Role.PREFILL) as sim:
            results["prefill_prefilled"] = await post(sim, prefilled(5, 4))
        return {
            name: (status, json.loads(body)["error"]["param"])
            for name, (status, body) in results.items()
        }

    assert run(scenario()) == {
        "decode_one_token": (400, "max_tokens"),
        "decode_no_prompt_tokens": (400, "prompt_tokens"),
        "decode_kv_hold": (400, "harness_kv_hold"),
        "aggregated_prefilled": (400, "harness_prefilled"),
        "aggregated_kv_hold": (400, "harness_kv_hold"),
        "prefill_prefilled": (400, "harness_prefilled"),
    }


def test_metrics_role_label_and_busy_time():
    async def scenario():
        labels = {}
        async with sim_server(Role.AGGREGATED) as sim:
            await post(sim, completion(3, stream=True))
            async with sim.session.get(sim.url + "/metrics") as response:
                exposition = parse_exposition(await response.text())
        for role in (Role.PREFILL, Role.DECODE):
            async with sim_server(role) as sim:
                async with sim.session.get(sim.url + "/metrics") as response:
                    role_exposition = parse_exposition(await response.text())
                labels[role.value] = {sample.labels["role"] for sample in role_exposition.samples}
        return exposition, labels

    exposition, labels = run(scenario())
    samples = {sample.name: sample for sample in exposition.samples}
    assert {sample.labels["role"] for sample in exposition.samples} == {"aggregated"}
    assert labels == {"prefill": {"prefill"}, "decode": {"decode"}}
    assert samples["sim:busy_seconds_total"].labels == {"model_name": "tiny", "role": "aggregated"}
    # 3 steps (the first prefills and emits token 1) of 1000 us each = 0.003 s
    assert samples["sim:busy_seconds_total"].value == 0.003
    assert exposition.types["sim:busy_seconds_total"] == "counter"
