"""Timing two (or more) brokers on the same queries, one query at a time
each in turn, so load on the machine falls on every variant alike."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from accord.client import BrokerClient

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

#: (query name, variant) -> seconds of each run.
Timings = dict[tuple[str, str], list[float]]
#: Rounds before timing: channels, views and caches warm in every variant.
WARM_UP = 5


def alternate(
    ports: Mapping[str, int],
    partner: tuple[Path, Path, Path],
    queries: Mapping[str, str],
    runs: int,
    *,
    case_ref: str,
) -> Timings:
    """``runs`` rounds of every query on every variant's broker (its port on
    localhost), as the Crown attorney preparing a bail hearing."""
    timings: Timings = {(q, v): [] for q in queries for v in ports}
    sessions = {
        v: BrokerClient(f"localhost:{port}", *partner, purpose="bail_hearing", case_ref=case_ref)
        for v, port in ports.items()
    }
    try:
        for _ in range(WARM_UP):
            for sql in queries.values():
                for v in ports:
                    sessions[v].query(sql)
        for _ in range(runs):
            for q, sql in queries.items():
                for v in ports:
                    started = time.perf_counter()
                    sessions[v].query(sql)
                    timings[q, v].append(time.perf_counter() - started)
    finally:
        for session in sessions.values():
            session.close()
    return timings
