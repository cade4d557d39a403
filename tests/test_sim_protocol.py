"""Request validation, prompt token counting and event rendering of the simulated engine."""

import json

import pytest

from harness.sim.openai_format import Endpoint, StreamRenderer
from harness.sim.protocol import CHAT_TOKENS_PER_MESSAGE, InvalidRequest, parse_generation_request


def parse(endpoint: Endpoint, **fields):
    return parse_generation_request(endpoint, {"model": "tiny", "max_tokens": 3, **fields})


def test_prompt_string_counts_words():
    assert parse(Endpoint.COMPLETIONS, prompt="  one two\tthree\nfour ").prompt_tokens == 4


def test_prompt_token_ids_count_ids():
    assert parse(Endpoint.COMPLETIONS, prompt=[5, 0, 7]).prompt_tokens == 3


def test_chat_counts_words_and_overhead():
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "one two three"}, {"type": "image_url"}],
        },
    ]
    # (2 words + 4) + (3 words + 4) = 13
    assert CHAT_TOKENS_PER_MESSAGE == 4
    assert parse(Endpoint.CHAT, messages=messages).prompt_tokens == 13


def test_chat_max_completion_tokens_wins():
    messages = [{"role": "user", "content": "hi"}]
    request = parse(Endpoint.CHAT, messages=messages, max_completion_tokens=9)
    assert request.max_tokens == 9


def test_continuous_usage_needs_include_usage():
    options = {"include_usage": False, "continuous_usage_stats": True}
    request = parse(Endpoint.COMPLETIONS, prompt="a", stream=True, stream_options=options)
    assert (request.include_usage, request.continuous_usage) == (False, False)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"prompt": "a", "max_tokens": None}, "max_tokens"),
        ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "a", "max_tokens": True}, "max_tokens"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, -2]}, "prompt"),
        ({"prompt": "a", "min_tokens": 4}, "min_tokens"),
        ({"prompt": "a", "stream": "yes"}, "stream"),
        ({"prompt": "a", "n": 2}, "n"),
        ({"prompt": "a", "stream_options": {"include_usage": True}}, "stream_options"),
        ({"prompt": "a", "model": 3}, "model"),
    ],
)
def test_completions_invalid_field(fields, param):
    with pytest.raises(InvalidRequest) as caught:
        parse(Endpoint.COMPLETIONS, **fields)
    assert caught.value.status == 400
    assert caught.value.param == param


def test_chat_rejects_empty_messages():
    with pytest.raises(InvalidRequest, match="messages"):
        parse(Endpoint.CHAT, messages=[])


def test_body_must_be_object():
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_generation_request(Endpoint.COMPLETIONS, [1, 2])


def events_of(data: bytes) -> list[str]:
    assert data.endswith(b"\n\n")
    return [event.removeprefix("data: ") for event in data.decode().split("\n\n")[:-1]]


def test_renderer_middle_token_event():
    renderer = StreamRenderer(
        Endpoint.COMPLETIONS, "cmpl-x", "tiny", 5, include_usage=True, continuous_usage=False
    )
    (event,) = events_of(renderer.token_events(2, max_tokens=3))
    chunk = json.loads(event)
    assert chunk["object"] == "text_completion"
    expected_choice = {"index": 0, "text": " tok", "logprobs": None, "finish_reason": None}
    assert chunk["choices"] == [expected_choice]
    assert "usage" not in chunk


def test_renderer_last_token_closes_stream():
    renderer = StreamRenderer(
        Endpoint.COMPLETIONS, "cmpl-x", "tiny", 5, include_usage=True, continuous_usage=False
    )
    last, usage_event, done = events_of(renderer.token_events(3, max_tokens=3))
    assert json.loads(last)["choices"][0]["finish_reason"] == "length"
    # 5 prompt + 3 generated = 8
    expected_usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert json.loads(usage_event)["usage"] == expected_usage
    assert json.loads(usage_event)["choices"] == []
    assert done == "[DONE]"


def test_renderer_chat_first_token_after_role():
    renderer = StreamRenderer(
        Endpoint.CHAT, "chatcmpl-x", "tiny", 5, include_usage=False, continuous_usage=False
    )
    role, token = events_of(renderer.token_events(1, max_tokens=3))
    assert json.loads(role)["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert json.loads(token)["choices"][0]["delta"] == {"content": " tok"}
    assert json.loads(token)["object"] == "chat.completion.chunk"


def test_renderer_escapes_model_name():
    renderer = StreamRenderer(
        Endpoint.COMPLETIONS, 'cmpl-"q"', 'a"b', 1, include_usage=False, continuous_usage=False
    )
    (event,) = events_of(renderer.token_events(1, max_tokens=2))
    assert json.loads(event)["model"] == 'a"b'
