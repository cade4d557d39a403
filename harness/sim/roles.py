"""Worker roles of the simulated engine and the hand-off protocol between them.

- aggregated: prefills and decodes its own requests.
- prefill: runs the prompt (chunked prefill, same step model) and generates exactly one
  token, whatever max_tokens the request sets. A request with "harness_kv_hold": true
  keeps its KV reserved after that token until POST KV_RELEASE_PATH names its response
  id, or until the hold timeout passes. Without the field the KV is freed at once,
  because no decode worker will read it.
- decode: serves only requests whose prompt was prefilled elsewhere. Their body sets
  "harness_prefilled": true and "prompt_tokens": N (prompt or messages may be omitted,
  and are not counted when present). Admission reserves N + max_tokens KV tokens and no
  step prefills them. The prefill worker generated the first token, so the decode worker
  generates max_tokens - 1 tokens and needs max_tokens >= 2. Its usage counts all
  max_tokens, so it matches the request the client sent.

The router (harness/sim/router/) connects the two: it sends the prompt with max_tokens 1
and harness_kv_hold to a prefill worker, waits for the KV transfer time, releases the
prefill worker's KV, then streams the remaining tokens from a decode worker.
"""

from enum import Enum

PREFILLED_FIELD = "harness_prefilled"
PROMPT_TOKENS_FIELD = "prompt_tokens"
KV_HOLD_FIELD = "harness_kv_hold"
# The body is {"request_id": "<id of the prefill worker's response>"}.
KV_RELEASE_PATH = "/harness/kv_release"


class Role(str, Enum):
    AGGREGATED = "aggregated"
    PREFILL = "prefill"
    DECODE = "decode"
