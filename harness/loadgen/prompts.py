"""Request bodies for /v1/completions (token-id prompts) and /v1/chat/completions.

Prompts are random and seeded: the same seed key and request id give the same prompt.
Each prompt starts with a prefix that no other request of the level shares, so that a
server's prefix cache cannot serve any part of a measured prompt.
"""

import json
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

EndpointKind = Literal["completions", "chat"]
ENDPOINT_KINDS: tuple[str, ...] = ("completions", "chat")

# Common English words, which BPE tokenizers usually encode as one token each (with the
# leading space), so a message of n words is about n tokens. NOTE: not checked against
# any particular tokenizer.
_WORDS = (
    "time year people way day man thing woman life child world school state family "
    "student group country problem hand part place case week company system program "
    "question work government number night point home water room mother area money story "
    "fact month lot right study book eye job word business issue side kind head house "
    "service friend father power hour game line end member law car city community name "
    "president team minute idea kid body information back parent face others level office "
    "door health person art war history party result change morning reason research girl "
    "guy moment air teacher force education foot boy age policy process music market sense"
).split()


def completion_token_ids(request_id: int, isl: int, vocab_size: int, seed_key: Sequence[int]) -> list[int]:
    """Return a prompt of exactly isl token ids in [0, vocab_size).

    The first id is (offset + request_id) % vocab_size with an offset drawn from seed_key,
    so no two of any vocab_size consecutive request ids share even their first token.
    The other ids are random, from a generator seeded with (*seed_key, request_id), so
    two prompts of one seed key share their first 8 ids with probability vocab_size**-7.
    """
    if isl < 1 or vocab_size < 1:
        raise ValueError(f"a prompt needs isl >= 1 and vocab_size >= 1, got isl={isl} vocab_size={vocab_size}")

    offset = int(np.random.default_rng(list(seed_key)).integers(vocab_size))
    rng = np.random.default_rng([*seed_key, request_id])
    ids = rng.integers(0, vocab_size, size=isl, dtype=np.int64)
    ids[0] = (offset + request_id) % vocab_size
    return ids.tolist()


def chat_prompt_text(request_id: int, isl: int, seed_key: Sequence[int]) -> str:
    """Return a user message of about isl tokens: the request id, then isl - 1 random words.

    The count is approximate because tokenizers differ, so the server's usage.prompt_tokens
    is the true input length, and it also counts the chat template.
    """
    if isl < 1:
        raise ValueError(f"a prompt needs isl >= 1, got isl={isl}")

    rng = np.random.default_rng([*seed_key, request_id])
    picks = rng.integers(0, len(_WORDS), size=isl - 1)
    return " ".join([str(request_id), *(_WORDS[i] for i in picks)])


def build_request_body(
    endpoint: EndpointKind,
    model: str,
    request_id: int,
    isl: int,
    osl: int,
    vocab_size: int,
    seed_key: Sequence[int],
) -> bytes:
    """Return the JSON body of one streaming request with exactly osl output tokens.

    max_tokens = min_tokens = osl with ignore_eos makes the server generate osl tokens.
    include_usage requests the final usage, and continuous_usage_stats requests the
    cumulative usage in every chunk, which gives the token count of each event.
    """
    body: dict[str, Any] = {"model": model}
    if endpoint == "completions":
        body["prompt"] = completion_token_ids(request_id, isl, vocab_size, seed_key)
    elif endpoint == "chat":
        body["messages"] = [{"role": "user", "content": chat_prompt_text(request_id, isl, seed_key)}]
    else:
        raise ValueError(f"unknown endpoint {endpoint!r}; use one of {ENDPOINT_KINDS}")

    body.update(
        max_tokens=osl,
        min_tokens=osl,
        ignore_eos=True,
        stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
    )
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
