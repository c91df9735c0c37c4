"""Failed sign-ins, counted per user name and per client address in a moving
window (the ``limits`` library), so a password cannot be guessed at speed.

Only failures count: a person who signs in is never held back by their own
earlier typo beyond the window, and a flood of failures for one name locks
that name only, not the console (the per-address bound is wider).
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, storage, strategies

#: Failed sign-ins allowed for one user name, and from one client address.
PER_USER = "5/15 minutes"
PER_CLIENT = "30/15 minutes"


class SigninThrottle:
    def __init__(self, per_user: str = PER_USER, per_client: str = PER_CLIENT) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self._user, self._client = parse(per_user), parse(per_client)

    def wait_s(self, user: str, client: str) -> int:
        """Seconds until ``user`` from ``client`` may try again; 0: now."""
        waits = [
            self._limiter.get_window_stats(limit, "signin", kind, key).reset_time - time.time()
            for limit, kind, key in self._keys(user, client)
            if not self._limiter.test(limit, "signin", kind, key)
        ]
        return math.ceil(max(waits)) if waits else 0

    def failed(self, user: str, client: str) -> None:
        for limit, kind, key in self._keys(user, client):
            self._limiter.hit(limit, "signin", kind, key)

    def _keys(self, user: str, client: str) -> list[tuple[RateLimitItem, str, str]]:
        return [(self._user, "user", user.casefold()), (self._client, "client", client)]
