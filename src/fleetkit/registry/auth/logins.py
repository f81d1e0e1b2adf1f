"""Password checks as the server makes them: off the event loop, and rate-limited when they fail.

bcrypt takes tens of milliseconds by design; run on the event loop, a few clients guessing
passwords stall every other request. :class:`LoginGuard` runs checks on a small thread pool of
their own (storage work keeps its pool) and refuses further attempts, with ``429`` and
``Retry-After``, once a user name or a client address has failed too often in the last minute.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fleetkit.registry.auth.users import Htpasswd
from fleetkit.registry.errors import RegistryAPIError, api_error

__all__ = ["LoginLimiter", "LoginGuard", "WINDOW_S"]

WINDOW_S = 60.0
_MAX_KEYS = 10000  # remembered users + addresses; the oldest are forgotten past this


class LoginLimiter:
    """Failed logins per user name and per client address in a sliding window of ``WINDOW_S``."""

    def __init__(
        self,
        per_user: int = 10,
        per_client: int = 30,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_client = per_client
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < limit:
            return 0.0
        return times[0] + self.window_s - now

    def retry_after_s(self, user: str, client: str | None) -> int:
        """Seconds until ``user`` from ``client`` may try again (0: now)."""
        now = self.clock()
        with self._lock:
            wait = self._wait("u:" + user, self.per_user, now)
            if client:
                wait = max(wait, self._wait("c:" + client, self.per_client, now))
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, user: str, client: str | None) -> None:
        now = self.clock()
        with self._lock:
            for key, limit in (
                ("u:" + user, self.per_user),
                ("c:" + (client or ""), self.per_client),
            ):
                if key == "c:":
                    continue
                times = self._failures.get(key)
                if times is None:
                    if len(self._failures) >= _MAX_KEYS:
                        self._failures.pop(next(iter(self._failures)))
                    times = self._failures[key] = deque(maxlen=limit)
                times.append(now)


class LoginGuard:
    """Verify passwords against ``users`` off the loop, refusing while rate-limited."""

    def __init__(self, users: Htpasswd, limiter: LoginLimiter | None = None) -> None:
        self.users = users
        self.limiter = limiter or LoginLimiter()
        # bcrypt releases the GIL: two threads use both cores of a small machine, and a flood of
        # guesses queues here instead of taking the storage threads
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fleetkit-bcrypt")

    def _too_many(self, wait_s: int) -> RegistryAPIError:
        return api_error(
            "TOOMANYREQUESTS",
            "too many failed logins; try again later",
            headers={"Retry-After": str(wait_s)},
        )

    async def check(self, user: str, password: str, client: str | None) -> bool:
        """True when the password is right; raise ``TOOMANYREQUESTS`` (429) while limited."""
        wait = self.limiter.retry_after_s(user, client)
        if wait:
            raise self._too_many(wait)
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._pool, self.users.check, user, password)
        if not ok:
            self.limiter.failed(user, client)
        return ok

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
