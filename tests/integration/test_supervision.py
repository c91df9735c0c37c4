"""The supervised federation of ``accord demo --serve``: each process killed
in turn (SIGKILL) is named in the log and restarted on its own address,
the rest keep answering meanwhile (partially, without a dead adapter), and
the killed one is back within the stated bounds:

* restarted and serving within RESTART_BOUND_S of the kill (a backoff of
  RESTART_BACKOFF_S, then a Python start on a shared machine);
* answering through the broker within RECOVERY_BOUND_S of serving again:
  the circuit's half-open probe (ACCORD_CIRCUIT_RESET_S, 2 s) plus the
  channel's reconnect (capped at 1 s, accord.tls) plus a scan.

Then every process is SERVING and ready, as ``accord status`` asks it with
the operator's certificate.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest

from accord.client import BrokerClient
from accord.v1 import broker_pb2
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import write_federation_data
from app.commands import init_certs
from app.launcher import RESTART_BACKOFF_S, LocalFederation
from app.status import listed_processes, probe
from broker.breaker import RESET_TIMEOUT_S
from broker.fanout import RECONNECT_WAIT_S

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from accord.client import QueryResult

pytestmark = pytest.mark.integration

RESTART_BOUND_S = RESTART_BACKOFF_S + 15.0
RECOVERY_BOUND_S = RESET_TIMEOUT_S + RECONNECT_WAIT_S + 1.0
SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source ORDER BY source"


T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], within_s: float) -> tuple[T, float]:
    """``check()``'s first true answer and the seconds it took; fails past ``within_s``."""
    started = time.monotonic()
    while True:
        answer = check()
        if answer:
            return answer, time.monotonic() - started
        if time.monotonic() - started > within_s:
            pytest.fail(f"{what}: not within {within_s:.1f} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = Workdir(tmp_path_factory.mktemp("supervised"))
    init_certs(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES)
    launcher = LocalFederation(workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES, supervise=True)
    write_federation_data(launcher.federation, workdir.path, seed=3, scale=0.002)
    with launcher:
        yield launcher


def client(launcher: LocalFederation) -> BrokerClient:
    ca, cert, key = launcher.workdir.partner_credentials("crown_attorney")
    return BrokerClient(
        launcher.broker_address, ca, cert, key, purpose="bail_hearing", case_ref="R-1"
    )


def ask(launcher: LocalFederation) -> QueryResult | None:
    """A partial-allowed answer, or None while the broker cannot be reached."""
    try:
        with client(launcher) as c:
            return c.query(SQL, allow_partial=True, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
        return None


#: What an internal address looks like in a message (see broker.fanout.scrub).
ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+|ipv[46]:|localhost:\d+")
#: A line as gRPC core writes it (absl format), not re-emitted as JSON.
CORE_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+\] ")


def partial_answers(scraped: str, source: str) -> float:
    """``accord_partial_answers_total`` without ``source``."""
    pattern = re.compile(
        rf'^accord_partial_answers_total\{{source="{re.escape(source)}"\}} (\S+)$', re.M
    )
    return sum(float(v) for v in pattern.findall(scraped))


def complete(launcher: LocalFederation) -> QueryResult | None:
    """An answer with every source in it, or None."""
    result = ask(launcher)
    return result if result is not None and not result.trailer.partial else None


def states(result: QueryResult) -> dict[str, int]:
    return {s.source: s.state for s in result.trailer.sources}


def kill(launcher: LocalFederation, name: str) -> int:
    child = launcher.children[name]
    assert child.state == "serving"
    pid, restarts = child.pid, child.restarts
    os.kill(pid, signal.SIGKILL)
    return restarts


def restarted(launcher: LocalFederation, name: str, restarts: int) -> float:
    child = launcher.children[name]
    _, took = wait_for(
        f"{name} restarted",
        lambda: child.state == "serving" and child.restarts == restarts + 1,
        RESTART_BOUND_S,
    )
    return took


def test_each_process_killed_in_turn_comes_back_and_the_rest_keep_answering(
    supervised: LocalFederation, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="accord.launcher")
    launcher = supervised
    full = ask(launcher)
    assert full is not None and not full.trailer.partial
    counts = full.table.to_pylist()
    sources = sorted(launcher.federation.sources)
    assert sorted(states(full)) == sources
    addresses = {name: child.address for name, child in launcher.children.items()}
    timings: dict[str, tuple[float, float]] = {}

    for code in sources:
        name = f"adapter-{code.lower()}"
        restarts = kill(launcher, name)
        # The others answer while it is down, the answer says who is missing.
        down = ask(launcher)
        assert down is not None and down.trailer.partial
        assert {s for s, st in states(down).items() if st != broker_pb2.SOURCE_STATE_OK} == {code}
        assert down.table.to_pylist() == [r for r in counts if r["source"] != code]
        said = next(s.error for s in down.trailer.sources if s.source == code)
        assert said and not ADDRESS.search(said), said  # no internal address for partners
        back_in = restarted(launcher, name, restarts)
        answered, recovered_in = wait_for(
            f"{code} answering again",
            lambda: complete(launcher),
            RECOVERY_BOUND_S,
        )
        assert answered.table.to_pylist() == counts
        timings[name] = (back_in, recovered_in)

    # Counted at the broker (before it is killed in turn, and its counters with it).
    scraped = (
        urllib.request.urlopen(
            f"http://{launcher.children['broker'].metrics_address}/metrics", timeout=5
        )
        .read()
        .decode()
    )
    for code in sources:
        assert partial_answers(scraped, code) >= 1, code

    restarts = kill(launcher, "broker")
    assert ask(launcher) is None  # nobody answers for the broker
    back_in = restarted(launcher, "broker", restarts)
    answered, recovered_in = wait_for(
        "the broker answering again",
        lambda: complete(launcher),
        RECOVERY_BOUND_S,
    )
    assert answered.table.to_pylist() == counts
    timings["broker"] = (back_in, recovered_in)

    # Same addresses throughout: the broker's endpoints and broker.addr stay right.
    assert {name: child.address for name, child in launcher.children.items()} == addresses
    died = [r.getMessage() for r in caplog.records if " died: " in r.getMessage()]
    assert [m.split(" ", 1)[0] for m in died] == [f"adapter-{c.lower()}" for c in sources] + [
        "broker"
    ]
    assert all("killed by SIGKILL" in m for m in died)
    print("kill -> serving, serving -> answering (s):", timings)

    # gRPC core's lines reached every log as JSON, none as plain text.
    for name in addresses:
        for line in (launcher.workdir.logs / f"{name}.log").read_text().splitlines():
            assert not CORE_LINE.match(line), f"{name}: {line}"

    # As `accord status` sees it: each process restarted once, serving, ready.
    processes = listed_processes(launcher.workdir, launcher.federation_path)
    for process in processes:
        probe(launcher.workdir, process, sources)
    assert {(p.name, p.health, p.ready) for p in processes} == {
        (name, "SERVING", "ready") for name in addresses
    }
    assert all(p.restarts >= 1 for p in processes)
    broker = next(p for p in processes if p.name == "broker")
    assert broker.sources == dict.fromkeys(sources, "SERVING")


def test_a_flapping_adapter_backs_off_opens_its_circuit_and_is_back_within_the_bound(
    supervised: LocalFederation,
) -> None:
    """Killed each time it comes back: its restarts wait longer each time
    (RESTART_BACKOFF_S doubled), queries meanwhile open its circuit, and
    once it stays up it answers within RECOVERY_BOUND_S (before: 66 s)."""
    launcher, code = supervised, "YT"
    name = f"adapter-{code.lower()}"
    seen: set[int] = set()
    outages: list[float] = []
    for _ in range(3):
        restarts = kill(launcher, name)
        killed = time.monotonic()
        child = launcher.children[name]
        while not (child.state == "serving" and child.restarts == restarts + 1):
            result = ask(launcher)
            assert result is not None
            seen.add(states(result)[code])
            assert time.monotonic() - killed < RESTART_BOUND_S
        outages.append(time.monotonic() - killed)
    assert broker_pb2.SOURCE_STATE_CIRCUIT_OPEN in seen
    assert outages[2] > outages[0] + 2 * RESTART_BACKOFF_S  # 0.5 s, then 1 s, then 2 s
    _, recovered_in = wait_for(
        f"{code} answering again",
        lambda: (r := ask(launcher)) is not None and states(r)[code] == broker_pb2.SOURCE_STATE_OK,
        RECOVERY_BOUND_S,
    )
    print(f"outages {outages}; serving -> answering {recovered_in:.2f} s")


def test_readyz_fails_for_an_adapter_whose_database_is_gone_and_the_broker_stays_ready(
    supervised: LocalFederation,
) -> None:
    """/readyz on the real processes: the adapter says why it is not ready
    (its database), the broker stays ready (a source down is reported, it
    does not decide), and both are ready again once the file is back."""
    source = supervised.federation.sources["SK"]
    assert source.backend.path is not None  # SQLite
    path = supervised.workdir.path / source.backend.path
    hidden = path.with_suffix(".away")

    def ready(name: str) -> tuple[int, dict[str, Any]]:
        url = f"http://{supervised.children[name].metrics_address}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert ready("adapter-sk")[0] == 200
    path.rename(hidden)
    try:
        status, body = ready("adapter-sk")
        assert status == 503
        failed = [c for c in body["checks"] if not c["ok"]]
        assert [(c["name"], c["detail"]) for c in failed] == [
            ("backend", "source SK: its database file " + path.name + " is missing")
        ]
        assert ready("broker")[0] == 200
    finally:
        hidden.rename(path)
    assert ready("adapter-sk")[0] == 200
