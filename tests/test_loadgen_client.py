"""Tests of harness.loadgen.client: one request against the fake server on 127.0.0.1 for
each kind of response, success and failure."""

import asyncio
import json
import socket

import aiohttp
import pytest
from loadgen_fake_server import CHAT_PROMPT_TOKENS, FakeServer

from harness.loadgen.client import Endpoint, LiveCounters, PreparedRequest, send_request
from harness.loadgen.metrics import itl_samples_ns, output_tokens, tpot_ns, ttft_ns


@pytest.fixture(scope="module")
def server():
    fake = FakeServer()
    fake.start()
    yield fake
    fake.stop()


def send_one(url, kind, model, osl=4, timeout_s=5.0, ttft_timeout_s=None, counters=None):
    async def run():
        endpoint = Endpoint(url=url, kind=kind, timeout_s=timeout_s, ttft_timeout_s=ttft_timeout_s)
        body = json.dumps({"model": model, "prompt": [1, 2, 3], "max_tokens": osl, "stream": True}).encode()
        request = PreparedRequest(request_id=5, warmup=False, target_isl=3, target_osl=osl, body=body)
        async with aiohttp.ClientSession() as session:
            return await send_request(session, endpoint, request, scheduled_perf_ns=0, counters=counters)

    return asyncio.run(run())


def completions(server, model, **kwargs):
    return send_one(server.base_url + "/v1/completions", "completions", model, **kwargs)


def chat(server, model, **kwargs):
    return send_one(server.base_url + "/v1/chat/completions", "chat", model, **kwargs)


def test_client_completions_stream(server):
    counters = LiveCounters()
    record = completions(server, "plain", osl=4, counters=counters)

    assert record.error_type is None
    assert record.status_code == 200
    assert record.token_counts == [1, 1, 1, 1]
    assert len(record.token_perf_ns) == 4
    assert record.usage_prompt_tokens == 7
    assert record.usage_completion_tokens == 4
    assert counters.output_tokens == 4


def test_client_timestamps_ordered(server):
    record = completions(server, "plain")

    assert record.send_perf_ns <= record.headers_perf_ns
    assert record.headers_perf_ns <= record.token_perf_ns[0]
    assert record.token_perf_ns == sorted(record.token_perf_ns)
    assert record.token_perf_ns[-1] <= record.end_perf_ns


def test_client_chat_role_chunk_not_a_token(server):
    record = chat(server, "chat")

    # content "a" (usage 1), "bcd" (1 -> 4), reasoning_content "e" (4 -> 5), reasoning
    # "f" (5 -> 6); the role-only chunk with empty content and the final usage chunk
    # with empty choices carry no token
    assert record.token_counts == [1, 3, 1, 1]
    assert record.usage_completion_tokens == 6
    assert record.usage_prompt_tokens == CHAT_PROMPT_TOKENS
    assert record.error_type is None


def test_client_chat_ttft_at_first_reasoning(server):
    record = chat(server, "chat_reasoning_first")

    # role-only and empty-reasoning chunks come first; "think" is the first token event
    assert record.token_counts == [1, 1]
    assert ttft_ns(record) == record.token_perf_ns[0] - record.send_perf_ns
    assert record.error_type is None


def test_client_osl_from_final_usage(server):
    record = completions(server, "final_usage_only")

    # three events without usage count 1 each, and the final chunk's usage reports 6
    assert record.token_counts == [1, 1, 1]
    assert record.usage_completion_tokens == 6
    assert output_tokens(record) == 6


def test_client_multi_token_events(server):
    record = completions(server, "multi_token")
    t0, t1, t2 = record.token_perf_ns

    # cumulative usage 2, 3, 6 gives events of 2, 1 and 3 tokens
    assert record.token_counts == [2, 1, 3]
    # one ITL sample for the 1-token event, three of a third of the gap for the last
    assert itl_samples_ns(record) == [t1 - t0, (t2 - t1) / 3, (t2 - t1) / 3, (t2 - t1) / 3]
    # TPOT leaves out the 2 tokens of the first event: (t2 - t0) / (6 - 2)
    assert tpot_ns(record) == (t2 - t0) / 4


def test_client_sse_framing_through_http(server):
    record = completions(server, "raw_framing")

    # CRLF and CR endings, data: without space, comments, event/id/retry lines and a
    # JSON object split over two data lines, all sent 7 bytes at a time
    assert record.error_type is None
    assert record.token_counts == [1, 1, 1]
    assert record.usage_completion_tokens == 3


def test_client_one_megabyte_event(server):
    record = completions(server, "big_event", osl=1)

    assert record.error_type is None
    assert record.token_counts == [1]


def test_client_stream_without_done(server):
    record = completions(server, "no_done")

    assert record.error_type == "incomplete_stream"
    assert "after 2 token events" in record.error_message
    # the tokens stay in the record
    assert record.token_counts == [1, 1]


def test_client_connection_closed_mid_body(server):
    record = completions(server, "disconnect")

    assert record.error_type == "incomplete_stream"
    assert record.token_counts == [1]


def test_client_error_mid_stream(server):
    record = completions(server, "midstream_error")

    assert record.error_type == "stream_error"
    assert "engine died" in record.error_message
    assert record.token_counts == [1, 1]


@pytest.mark.parametrize("status", [429, 500])
def test_client_http_error_status(server, status):
    record = completions(server, f"http{status}")

    assert record.error_type == "http_error"
    assert record.status_code == status
    assert record.error_message == f"HTTP {status}: status {status} from the fake server"
    assert record.end_perf_ns is not None


def test_client_no_tokens(server):
    record = chat(server, "no_tokens")

    assert record.error_type == "no_tokens"
    assert record.usage_completion_tokens == 0


def test_client_ttft_timeout_after_headers(server):
    record = completions(server, "silent", timeout_s=5.0, ttft_timeout_s=0.2)

    assert record.error_type == "ttft_timeout"
    assert record.status_code == 200
    assert "ttft_timeout_s=0.2" in record.error_message


def test_client_ttft_timeout_without_headers(server):
    record = completions(server, "no_headers", timeout_s=5.0, ttft_timeout_s=0.2)

    assert record.error_type == "ttft_timeout"
    assert record.headers_perf_ns is None


def test_client_total_timeout_without_tokens(server):
    record = completions(server, "silent", timeout_s=0.2)

    assert record.error_type == "timeout"
    assert "timeout_s=0.2" in record.error_message


def test_client_total_timeout_after_first_token(server):
    # The first token ends the TTFT limit, so the 0.6 s total limit is the one that ends it.
    record = completions(server, "stall_after_token", timeout_s=0.6, ttft_timeout_s=0.4)

    assert record.error_type == "timeout"
    assert record.token_counts == [1]


def test_client_timeout_after_done_succeeds(server):
    record = completions(server, "open_after_done", timeout_s=0.5)

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
