"""Choice of a worker within one pool (prefill or decode) of the router."""

from enum import Enum


class Policy(str, Enum):
    # Workers in turn, whatever their load.
    ROUND_ROBIN = "round_robin"
    # The worker with the fewest requests that this router has in flight on it. Ties go
    # to the first tied worker after the previous choice, so idle workers take turns.
    LEAST_LOADED = "least_loaded"


class WorkerPool:
    """Worker URLs of one role and the router's requests in flight on each.

    Callers pair every acquire() with one release() of the URL it returned.
    """

    def __init__(self, role: str, urls: list[str], policy: Policy) -> None:
        if not urls:
            raise ValueError(f"the {role} pool needs at least one worker URL")
        self.role = role
        self.urls = list(urls)
        self.policy = policy
        self.in_flight = {url: 0 for url in self.urls}
        self._next_index = 0

    def acquire(self) -> str:
        """Choose a worker by the pool's policy, count one more request on it, return its URL."""
        count = len(self.urls)
        index = self._next_index
        if self.policy is Policy.LEAST_LOADED:
            loads = [self.in_flight[self.urls[(index + offset) % count]] for offset in range(count)]
            index = (index + loads.index(min(loads))) % count

        self._next_index = (index + 1) % count
        url = self.urls[index]
        self.in_flight[url] += 1
        return url

    def release(self, url: str) -> None:
        self.in_flight[url] -= 1
