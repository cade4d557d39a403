"""One generation request inside the simulated engine, and its lifecycle states."""

import asyncio
from collections.abc import Callable
from enum import Enum


class RequestState(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    # The client disconnected, and its KV reservation is freed.
    CANCELLED = "cancelled"
    # The server stopped before the request finished.
    ABORTED = "aborted"


class SimRequest:
    """One generation request inside the engine.

    on_token, when set, is called with the request after each emitted token. It returns
    False when the client is gone, and the scheduler then cancels the request. Create the
    request inside the running event loop, which owns its done future.
    """

    __slots__ = (
        "request_id", "prompt_tokens", "max_tokens", "on_token", "state", "prefilled_tokens",
        "generated_tokens", "emit_perf_ns", "emit_wall_ns_first", "done",
    )

    def __init__(
        self,
        request_id: str,
        prompt_tokens: int,
        max_tokens: int,
        on_token: Callable[["SimRequest"], bool] | None = None,
    ) -> None:
        if prompt_tokens < 1 or max_tokens < 1:
            raise ValueError(
                f"request {request_id}: prompt_tokens ({prompt_tokens}) and max_tokens "
                f"({max_tokens}) must both be >= 1"
            )
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.on_token = on_token
        self.state = RequestState.WAITING
        self.prefilled_tokens = 0
        self.generated_tokens = 0
        self.emit_perf_ns: list[int] = []
        self.emit_wall_ns_first: int | None = None
        # Resolved with None when the request leaves the engine in any final state.
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def kv_tokens(self) -> int:
        """KV cache tokens reserved for the request at admission."""
        return self.prompt_tokens + self.max_tokens
