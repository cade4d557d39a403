"""Request checks of each worker role, and the engine request built from a valid request."""

from collections.abc import Callable

from harness.sim.protocol import GenerationRequest, InvalidRequest
from harness.sim.request import SimRequest
from harness.sim.roles import KV_HOLD_FIELD, PREFILLED_FIELD, Role


def new_engine_request(
    parsed: GenerationRequest,
    resp_id: str,
    role: Role,
    on_token: Callable[[SimRequest], bool] | None = None,
) -> SimRequest:
    """Create the engine's request. A prefill worker generates one token, whatever max_tokens."""
    max_tokens = 1 if role is Role.PREFILL else parsed.max_tokens
    return SimRequest(
        resp_id, parsed.prompt_tokens, max_tokens, on_token, parsed.prefilled, parsed.kv_hold
    )


def check_role(parsed: GenerationRequest, role: Role) -> None:
    """Raise InvalidRequest for a request that this server's role does not serve."""
    if role is Role.DECODE and not parsed.prefilled:
        raise InvalidRequest(
            "this server runs the decode role and serves only requests prefilled elsewhere. "
            "Send the request through the router (harness sim router), or set "
            f"{PREFILLED_FIELD}: true and prompt_tokens",
            PREFILLED_FIELD,
        )
    if role is Role.DECODE and parsed.max_tokens < 2:
        raise InvalidRequest(
            f"a prefilled request needs max_tokens >= 2, because the prefill worker generated "
            f"its first token, got {parsed.max_tokens}",
            "max_tokens",
        )
    if role is not Role.DECODE and parsed.prefilled:
        raise InvalidRequest(
            f"{PREFILLED_FIELD} is accepted only by a decode-role server, and this server "
            f"runs the {role.value} role. Remove the field or send it to a decode worker",
            PREFILLED_FIELD,
        )
    if role is not Role.PREFILL and parsed.kv_hold:
        raise InvalidRequest(
            f"{KV_HOLD_FIELD} is accepted only by a prefill-role server, and this server "
            f"runs the {role.value} role. Remove the field or send it to a prefill worker",
            KV_HOLD_FIELD,
        )


def check_fits(
    parsed: GenerationRequest,
    role: Role,
    model_name: str,
    context_length: int,
    kv_capacity_tokens: int,
) -> None:
    """Raise InvalidRequest for a wrong model or a request larger than the engine."""
    if parsed.model != model_name:
        raise InvalidRequest(
            f"model {parsed.model!r} not found. This server serves {model_name!r}",
            "model",
            status=404,
        )

    # A prefill worker reserves KV only for the prompt and its one generated token.
    kv_generated_tokens = 1 if role is Role.PREFILL else parsed.max_tokens
    limits = (
        ("context length", context_length, parsed.max_tokens),
        ("KV cache capacity", kv_capacity_tokens, kv_generated_tokens),
    )
    for limit_name, limit_tokens, generated_tokens in limits:
        total_tokens = parsed.prompt_tokens + generated_tokens
        if total_tokens > limit_tokens:
            raise InvalidRequest(
                f"prompt ({parsed.prompt_tokens} tokens) + {generated_tokens} generated tokens = "
                f"{total_tokens} tokens exceeds the {limit_name} of {limit_tokens} tokens. "
                "Shorten the prompt or lower max_tokens",
                "max_tokens",
            )
