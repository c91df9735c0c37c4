"""Admission per partner: concurrent queries, queries per second, bytes in flight.

One partner must not starve the others. Before any work on a query, the
partner's :class:`Quota` (its role's ``quota:`` in ``policies/roles/``,
overridden per partner in ``policies/partners.yaml``) is checked against
what that partner has under way:

- ``concurrent_queries``: queries of the partner being answered at once;
- ``queries_per_second`` with ``burst``: a token bucket (``burst`` queries
  at once, refilled at the rate);
- ``bytes_in_flight_mb``: Arrow bytes of the partner's answers handed to
  gRPC and not yet written to the client (what a client that stops reading
  pins in the broker; ``broker.slow_reader`` counts them).

A query over a limit is refused with :class:`~accord.errors.OverQuota`,
naming the limit and its value, with the delay after which it could be
admitted (the servicer sends it as a ``google.rpc.RetryInfo``).

The counts are kept per partner name, apart from the policy: a reload
changes the limits a partner is held to, never what it has under way
(a :class:`Ticket` releases into the same counts that admitted it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from accord.errors import OverQuota

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

MB = 1024 * 1024
#: The retry delay advised when a concurrency or bytes limit refuses: such
#: a slot frees when one of the partner's answers ends, which no one can
#: foresee; a second is long enough not to hammer, short enough to be fair.
BUSY_RETRY_S = 1.0


@dataclass(frozen=True)
class Quota:
    """What one partner may have under way. The defaults apply to a role
    whose policy says nothing: concurrency is what protects the others (on
    two cores, another partner's median under a flood of 50 at once: 4.5 s
    unbounded, 0.45 s at 4, 2.1 s at 8; ``bench/partner_flood.py``); the rate
    only stops floods of cheap queries, high enough for a batch job that
    asks one query after another."""

    concurrent_queries: int = 4
    queries_per_second: float = 100.0
    burst: int = 200
    bytes_in_flight_mb: float = 512.0

    @property
    def bytes_in_flight(self) -> int:
        return int(self.bytes_in_flight_mb * MB)


#: The keys of a ``quota:`` mapping, in role and partner files alike.
QUOTA_KEYS = frozenset(f.name for f in fields(Quota))


class QuotaValueError(ValueError):
    """One key of a ``quota:`` mapping is wrong (``key`` names it, for the line)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


def quota_from(spec: Mapping[str, Any], base: Quota) -> Quota:
    """``base`` with the keys ``spec`` gives; every value checked.

    >>> quota_from({"concurrent_queries": 2}, Quota()).concurrent_queries
    2
    >>> quota_from({"burst": 0}, Quota())
    Traceback (most recent call last):
    ...
    broker.quota.QuotaValueError: quota burst must be a positive integer (got 0)
    """
    unknown = sorted(set(spec) - QUOTA_KEYS)
    if unknown:
        raise QuotaValueError(
            unknown[0],
            f"unknown quota key {unknown[0]!r}; allowed: {', '.join(sorted(QUOTA_KEYS))}",
        )
    for key in ("concurrent_queries", "burst"):
        value = spec.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise QuotaValueError(key, f"quota {key} must be a positive integer (got {value!r})")
    for key in ("queries_per_second", "bytes_in_flight_mb"):
        value = spec.get(key, 1.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise QuotaValueError(key, f"quota {key} must be a positive number (got {value!r})")
    return replace(base, **dict(spec))


@dataclass
class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second of ``clock``."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.updated = float(self.burst), self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> float:
        """Takes one token and answers 0, or takes none and answers the
        seconds until one is there."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate

    def resize(self, rate: float, burst: int) -> None:
        """New limits (a reload); the tokens already earned stay, up to the burst."""
        if (rate, burst) != (self.rate, self.burst):
            self._refill()
            self.rate, self.burst = rate, burst
            self.tokens = min(self.tokens, burst)


@dataclass
class PartnerLoad:
    """What one partner has under way now."""

    bucket: TokenBucket
    queries: int = 0
    bytes: int = 0


class Ticket:
    """One admitted query: holds its slot and its bytes in flight until closed."""

    def __init__(self, load: PartnerLoad, quota: Quota) -> None:
        self.load, self.quota = load, quota
        self.held = 0
        self.closed = False

    def hold(self, size: int) -> None:
        """Counts ``size`` more bytes of this answer in flight; refuses when the
        partner's would pass its limit (a lone answer may always hold one
        message, or no answer could be sent at all)."""
        limit = self.quota.bytes_in_flight
        if self.held and self.load.bytes + size > limit:
            raise OverQuota(
                f"the partner's answers hold {self.load.bytes + size} bytes not yet read, "
                f"over its quota bytes_in_flight_mb={self.quota.bytes_in_flight_mb:g}; "
                "read answers as they arrive",
                limit="bytes_in_flight",
                retry_after_s=BUSY_RETRY_S,
            )
        self.held += size
        self.load.bytes += size

    def release(self, size: int) -> None:
        size = min(size, self.held)
        self.held -= size
        self.load.bytes -= size

    def close(self) -> None:
        """Frees the slot and every byte still held; a second close does nothing."""
        if self.closed:
            return
        self.closed = True
        self.release(self.held)
        self.load.queries -= 1

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Admission:
    """The load of every partner, and the one decision: admit or refuse."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.loads: dict[str, PartnerLoad] = {}

    def admit(self, partner: str, quota: Quota) -> Ticket:
        """A ticket for one query of ``partner`` under ``quota``, or OverQuota.

        Concurrency and bytes are checked before the bucket, so a refused
        query spends no token."""
        load = self.loads.get(partner)
        if load is None:
            bucket = TokenBucket(quota.queries_per_second, quota.burst, self.clock)
            load = self.loads[partner] = PartnerLoad(bucket)
        load.bucket.resize(quota.queries_per_second, quota.burst)
        if load.queries >= quota.concurrent_queries:
            raise OverQuota(
                f"the partner has {load.queries} queries under way, its quota "
                f"concurrent_queries={quota.concurrent_queries}; retry when one ends",
                limit="concurrent_queries",
                retry_after_s=BUSY_RETRY_S,
            )
        if load.bytes >= quota.bytes_in_flight:
            raise OverQuota(
                f"the partner's answers hold {load.bytes} bytes not yet read, over its "
                f"quota bytes_in_flight_mb={quota.bytes_in_flight_mb:g}; read them first",
                limit="bytes_in_flight",
                retry_after_s=BUSY_RETRY_S,
            )
        wait = load.bucket.take()
        if wait > 0:
            raise OverQuota(
                f"the partner is over its quota queries_per_second="
                f"{quota.queries_per_second:g} (burst {quota.burst}); retry in {wait:.2f} s",
                limit="queries_per_second",
                retry_after_s=wait,
            )
        load.queries += 1
        return Ticket(load, quota)
