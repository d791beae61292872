"""Rate-limit counters in the worker's own memory, without a sweeping thread (`process://`).

Without Redis, each worker counts its own requests. limits' `memory://` storage does that too, but
it starts a thread 10 ms after almost every counted request to sweep expired counters: in a rush
that is a new thread for nearly every submission. Here a counter is dropped when it is read
after its window, and the counters of visitors who never came back are swept at most once a
minute, by the request that counts. Fixed windows only (Flask-Limiter's default strategy);
asking for another strategy with this storage fails when the app starts.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import Storage

SWEEP_EVERY_S = 60.0


class ProcessStorage(Storage):
    STORAGE_SCHEME = ["process"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        # key -> [count, end of its window (epoch seconds: the reset time limits reports)]
        self._counters: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.time() + SWEEP_EVERY_S

    @property
    def base_exceptions(self) -> type[Exception]:
        return OSError  # nothing here talks to anything; limits asks all storages for theirs

    def _live(self, key: str, now: float) -> list[float] | None:
        entry = self._counters.get(key)
        if entry is not None and entry[1] <= now:
            del self._counters[key]
            return None
        return entry

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
                self._next_sweep = now + SWEEP_EVERY_S
            entry = self._live(key, now)
            if entry is None:
                entry = self._counters[key] = [0, now + expiry]
            entry[0] += amount
            return int(entry[0])

    def get(self, key: str) -> int:
        with self._lock:
            entry = self._live(key, time.time())
            return int(entry[0]) if entry else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with self._lock:
            entry = self._live(key, now)
            return entry[1] if entry else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            count = len(self._counters)
            self._counters.clear()
            return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._counters.pop(key, None)
