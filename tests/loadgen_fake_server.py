"""An OpenAI-style streaming server on 127.0.0.1 for the load generator's tests.

The request's "model" field picks how the server responds (see FakeServer.handle). The
server runs its own event loop in a thread, because run_level() starts another event
loop in the test's thread. It counts the requests in flight, which the concurrency
tests check.
"""

import asyncio
import json
import threading

from aiohttp import web

CHAT_PROMPT_TOKENS = 42

# A handler of the "barrier" scenario waits at most this long for the others.
HOLD_TIMEOUT_S = 10.0

# A hung handler sleeps this long; the client's timeouts end such requests much earlier.
HANG_S = 30.0


def event(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def text_chunk(text, completion_tokens=None, prompt_tokens=7):
    chunk = {"object": "text_completion", "choices": [{"index": 0, "text": text}]}
    if completion_tokens is not None:
        chunk["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return chunk


def chat_chunk(delta, completion_tokens=None):
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    if completion_tokens is not None:
        chunk["usage"] = {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": completion_tokens}
    return chunk


def usage_chunk(prompt_tokens, completion_tokens):
    return {"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}


class FakeServer:
    """Streaming server in a background thread; see handle() for the scenarios."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []
        self.authorizations: list[str | None] = []
        # "barrier": handlers wait until this many are in flight, then all stream at once.
        self.hold_until = 1
        # "sequence": the n-th request received runs scenario sequence[n % len(sequence)].
        self.sequence: list[str] = []
        self.received = 0

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def reset(self, hold_until: int = 1, sequence: list[str] | None = None) -> None:
        """Clear the counts, and set the barrier size and the scenario sequence of the next test."""

        async def clear() -> None:
            self.max_in_flight = 0
            self.received = 0
            self.bodies.clear()
            self.authorizations.clear()
            self.hold_until = hold_until
            self.sequence = list(sequence or [])
            self.round = asyncio.Event()

        asyncio.run_coroutine_threadsafe(clear(), self.loop).result(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        self.round = asyncio.Event()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/completions", self.handle)
        app.router.add_post("/v1/chat/completions", self.handle)
        # Cancel a handler when its client disconnects, so that the timeout cases end at once.
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        # The default backlog of 128 would drop connections when 1000 clients connect at once.
        await web.TCPSite(self.runner, "127.0.0.1", 0, backlog=4096).start()
        self.port = self.runner.addresses[0][1]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        self.authorizations.append(request.headers.get("Authorization"))
        scenario = body["model"]
        if scenario == "sequence":
            scenario = self.sequence[self.received % len(self.sequence)]
        self.received += 1
        osl = body.get("max_tokens", 4)

        if scenario in ("http429", "http500"):
            status = int(scenario[4:])
            error = {"error": {"message": f"status {status} from the fake server", "type": "Error", "code": status}}
            return web.json_response(error, status=status)
        if scenario == "no_headers":
            await asyncio.sleep(HANG_S)

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if scenario in ("barrier", "slow"):
            await self.stream_counted(response, body, osl, scenario)
        elif scenario == "raw_framing":
            # Sent in small pieces, so lines and line endings also split across reads.
            stream = self.raw_framing_stream()
            for start in range(0, len(stream), 7):
                await response.write(stream[start : start + 7])
            return await self.finish(response, done=False)
        else:
            for piece in self.scenario_events(scenario, osl):
                if piece is None:
                    await asyncio.sleep(HANG_S)
                elif piece == b"disconnect":
                    request.transport.close()
                    return response
                else:
                    await response.write(piece)
            if scenario in ("no_done", "midstream_error"):
                return await self.finish(response, done=False)
        return await self.finish(response, done=True, keep_open=scenario == "open_after_done")

    async def finish(self, response: web.StreamResponse, done: bool, keep_open: bool = False) -> web.StreamResponse:
        if done:
            await response.write(b"data: [DONE]\n\n")
        if keep_open:
            await asyncio.sleep(HANG_S)
        await response.write_eof()
        return response

    def scenario_events(self, scenario: str, osl: int) -> list[bytes | None]:
        """Events of the simple scenarios; None stands for a hang, b"disconnect" for a closed socket."""
        if scenario == "plain":
            return [event(text_chunk("t", i + 1)) for i in range(osl)] + [event(usage_chunk(7, osl))]

        if scenario == "short":
            # Two tokens fewer than max_tokens, and usage that reports 2 fewer.
            return [event(text_chunk("t", i + 1)) for i in range(osl - 2)] + [event(usage_chunk(7, osl - 2))]

        if scenario == "chat":
            return [
                event(chat_chunk({"role": "assistant", "content": ""}, 0)),
                event(chat_chunk({"content": "a"}, 1)),
                event(chat_chunk({"content": "bcd"}, 4)),
                event(chat_chunk({"reasoning_content": "e"}, 5)),
                event(chat_chunk({"reasoning": "f"}, 6)),
                event(usage_chunk(CHAT_PROMPT_TOKENS, 6)),
            ]

        if scenario == "chat_reasoning_first":
            return [
                event(chat_chunk({"role": "assistant"})),
                event(chat_chunk({"content": None, "reasoning": ""})),
                event(chat_chunk({"reasoning": "think"})),
                event(chat_chunk({"content": "answer"})),
                event(usage_chunk(CHAT_PROMPT_TOKENS, 2)),
            ]

        if scenario == "multi_token":
            # Events of 2, 1 and 3 tokens by cumulative usage.
            return [event(text_chunk("ab", 2)), event(text_chunk("c", 3)), event(text_chunk("def", 6)), event(usage_chunk(7, 6))]

        if scenario == "final_usage_only":
            # No usage per event, so the client counts 1 token an event. The final usage reports 6.
            return [event(text_chunk("ab")), event(text_chunk("cd")), event(text_chunk("ef")), event(usage_chunk(7, 6))]

        if scenario == "big_event":
            return [event(text_chunk("x" * 1_000_000, 1)), event(usage_chunk(7, 1))]

        if scenario == "no_done":
            return [event(text_chunk("a", 1)), event(text_chunk("b", 2))]

        if scenario == "midstream_error":
            return [event(text_chunk("a", 1)), event(text_chunk("b", 2)), event({"error": {"message": "engine died", "code": 500}})]

        if scenario == "no_tokens":
            return [event(chat_chunk({"role": "assistant"}, 0)), event(usage_chunk(CHAT_PROMPT_TOKENS, 0))]

        if scenario == "open_after_done":
            return [event(text_chunk("a", 1))]

        if scenario == "silent":
            return [None]

        if scenario == "stall_after_token":
            return [event(text_chunk("a", 1)), None]

        if scenario == "disconnect":
            return [event(text_chunk("a", 1)), b"disconnect"]
        raise ValueError(f"unknown scenario {scenario!r}")

    @staticmethod
    def raw_framing_stream() -> bytes:
        """Three token events framed with every line-ending and field rule, then [DONE] with CR endings."""
        first = json.dumps(text_chunk("a", 1)).encode()
        second = json.dumps(text_chunk("b", 2))
        # A JSON object split into several data lines; the parser joins them with LF.
        second_lines = second.replace(', "choices"', '\ndata: , "choices"').encode()
        third = json.dumps(text_chunk("c", 3)).encode()
        return (
            b": comment before the first event\r\n"
            b"event: message\r\nid: 1\r\ndata:" + first + b"\r\n\r\n"
            b"retry: 100\ndata: " + second_lines + b"\n\n"
            b"event: message\rdata: " + third + b"\r\r"
            b"data: " + json.dumps(usage_chunk(7, 3)).encode() + b"\r\n\r\n"
            b"data: [DONE]\r\r"
        )

    async def stream_counted(self, response: web.StreamResponse, body: dict, osl: int, scenario: str) -> None:
        """Stream osl tokens 5 ms apart while counting this request as in flight.

        "barrier" first waits until hold_until requests are in flight, so every round
        of requests overlaps completely.
        """
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        prompt_tokens = len(body.get("prompt", []))
        try:
            if scenario == "barrier":
                if self.in_flight >= self.hold_until:
                    self.round.set()
                    self.round = asyncio.Event()
                else:
                    try:
                        await asyncio.wait_for(self.round.wait(), HOLD_TIMEOUT_S)
                    except TimeoutError:
                        pass
            for i in range(osl):
                await asyncio.sleep(0.005)
                await response.write(event(text_chunk("t", i + 1, prompt_tokens=prompt_tokens)))
            await response.write(event(usage_chunk(prompt_tokens, osl)))
        finally:
            # Counted as finished before [DONE], so the client cannot start its next
            # request while this one still counts.
            self.in_flight -= 1
