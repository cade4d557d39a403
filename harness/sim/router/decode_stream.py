"""Read a decode worker's token stream as the number of tokens that each read delivers."""

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp

from harness.loadgen.sse import SSEParser
from harness.sim.router.context import WorkerError, describe
from harness.sim.router.metrics import Stage


async def read_token_counts(response: aiohttp.ClientResponse, url: str) -> AsyncIterator[int]:
    """Yield the token count of each read of the stream that carries tokens, until [DONE].

    The router requests no usage chunks from its decode workers, so every event other
    than an error is one token. Raises WorkerError for a failed read or an error event.
    """
    parser = SSEParser()
    while not parser.done:
        try:
            chunk = await response.content.readany()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise WorkerError(
                502, f"decode worker {url} stream failed: {describe(exc)}", Stage.DECODE, url
            ) from exc
        if not chunk:
            return

        tokens = 0
        for event in parser.feed(chunk):
            if event.startswith(b'{"error"'):
                raise _error_event(url, event)
            tokens += 1
        if tokens:
            yield tokens


def _error_event(url: str, event: bytes) -> WorkerError:
    try:
        error = json.loads(event)["error"]
        status, worker_message = int(error["code"]), error["message"]
    except (ValueError, KeyError, TypeError):
        status, worker_message = 502, event[:200].decode(errors="replace")
    message = f"decode worker {url} ended its stream with an error: {worker_message}"
    return WorkerError(status, message, Stage.DECODE, url)
