"""Fault injection with real processes: a three-source federation (ON and QC
on their real SQLite adapters, BC faulty) started with LocalFederation, where
BC's adapter is killed with SIGKILL and, for most faults, replaced on the
same port by ``tests.integration.fake_adapter`` in a given mode.

Each test checks the exact outcome (which sources, which state, which rows),
that the broker still answers a normal query afterwards, and that the answer
came within the query's deadline plus a small margin.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import yaml

from accord.client import BrokerClient
from accord.federation import Federation, load_federation
from accord.v1 import broker_pb2
from accord.workdir import DEFAULT_FEDERATION, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from app.serve import SHUTDOWN_GRACE_S
from broker.policy.store import PolicySet
from tests.integration.conftest import Running, policies_without, rows

if TYPE_CHECKING:
    import pyarrow as pa

pytestmark = pytest.mark.integration

FPS_LINK = broker_pb2.LINK_METHOD_FPS

SOURCES = ("BC", "ON", "QC")
FAULTY = "BC"
HEALTHY = ("ON", "QC")
SEED = 5
SCALE = 0.002
#: Deadline of the fault queries, and the slack allowed on top of a deadline.
TIMEOUT_S = 10.0
MARGIN_S = 1.5
REPO = Path(__file__).resolve().parents[2]

COUNT_SQL = "SELECT source, count(*) AS n FROM offenders GROUP BY source ORDER BY source"
ROWS_SQL = (
    "SELECT source, source_person_id, surname FROM offenders ORDER BY source, source_person_id"
)
OK = broker_pb2.SOURCE_STATE_OK


def healthy_only(sql: str) -> str:
    """``sql`` restricted to the healthy sources, for the oracle."""
    inner = f"(SELECT * FROM offenders WHERE source IN {HEALTHY})"
    return sql.replace("FROM offenders", f"FROM {inner} AS offenders", 1)


@dataclass
class Prepared:
    workdir: Workdir
    federation_path: Path
    federation: Federation
    generated: dict[str, dict[str, pa.Table]]
    policy: PolicySet
    policies_dir: Path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Prepared:
    """Certificates and SQLite data for BC, ON and QC, made once per module."""
    root = tmp_path_factory.mktemp("faults")
    raw = yaml.safe_load(DEFAULT_FEDERATION.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["code"] in SOURCES]
    federation_path = root / "federation.yaml"
    federation_path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    federation = load_federation(federation_path)
    assert sorted(federation.sources) == sorted(SOURCES)
    workdir = Workdir(root / "work")
    policies = policies_without(root / "policies", {"victim"})  # no CA-CSC here
    init_certs(workdir, federation_path, policies)
    write_federation_data(federation, workdir.path, seed=SEED, scale=SCALE)
    generated = generate(federation, seed=SEED, scale=SCALE)
    policy = PolicySet.load(policies, federation)
    return Prepared(workdir, federation_path, federation, generated, policy, policies)


@dataclass
class Faulty:
    running: Running
    prepared: Prepared
    fakes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def launcher(self) -> LocalFederation:
        return self.running.launcher

    def client(self) -> BrokerClient:
        return self.running.client("crown_attorney", purpose="bail_hearing", case_ref="R-2026-0042")

    def expected(self, sql: str) -> list[tuple[Any, ...]]:
        return self.running.oracle().sql(healthy_only(sql)).fetchall()

    def kill_adapter(self, code: str = FAULTY) -> None:
        process = self.launcher.processes[f"adapter-{code.lower()}"]
        process.kill()  # SIGKILL: no goodbye to anyone
        process.wait(timeout=5)

    def replace_with_fake(self, mode: str, code: str = FAULTY) -> subprocess.Popen[bytes]:
        """SIGKILLs the real adapter, serves ``mode`` on the same port instead."""
        port = self.launcher.adapter_addresses[code].rsplit(":", 1)[1]
        self.kill_adapter(code)
        port_file = self.prepared.workdir.run / f"fake-{code}.addr"
        port_file.unlink(missing_ok=True)
        self.scan_log(code).unlink(missing_ok=True)
        log = (self.prepared.workdir.logs / f"fake-{code.lower()}.log").open("ab")
        fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.fake_adapter",
                "--mode",
                mode,
                "--source",
                code,
                "--workdir",
                str(self.prepared.workdir.path),
                "--federation",
                str(self.prepared.federation_path),
                "--port",
                port,
                "--port-file",
                str(port_file),
                "--scan-log",
                str(self.scan_log(code)),
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.fakes.append(fake)
        deadline = time.monotonic() + 15
        while not port_file.is_file():
            assert fake.poll() is None, f"the fake adapter exited with {fake.returncode}"
            assert time.monotonic() < deadline, "the fake adapter did not start"
            time.sleep(0.05)
        assert port_file.read_text().strip().endswith(f":{port}")
        return fake

    def scan_log(self, code: str = FAULTY) -> Path:
        """Where the fake adapter of ``code`` notes each Scan as it arrives."""
        return self.prepared.workdir.run / f"fake-{code.lower()}.scans"

    def wait_for_scan(self, code: str = FAULTY, within_s: float = 15.0) -> None:
        """Returns once a Scan has reached the fake adapter of ``code``."""
        log = self.scan_log(code)
        deadline = time.monotonic() + within_s
        while not (log.is_file() and log.read_text().strip()):
            assert time.monotonic() < deadline, f"no scan reached the fake {code} adapter"
            time.sleep(0.02)

    def assert_broker_healthy(self) -> None:
        """A normal query (not touching BC) still gets a full, correct answer."""
        assert self.launcher.processes["broker"].poll() is None, "the broker died"
        sql = "SELECT count(*) AS n FROM offenders WHERE source = 'ON'"
        with self.client() as client:
            result = client.query(sql, timeout=TIMEOUT_S)
        assert rows(result.table) == self.running.oracle().sql(sql).fetchall()
        assert rows(result.table)[0][0] > 0
        assert not result.trailer.partial
        assert [(s.source, s.state) for s in result.trailer.sources] == [("ON", OK)]

    def stop_fakes(self) -> None:
        for fake in self.fakes:
            if fake.poll() is None:
                fake.kill()
            fake.wait(timeout=5)


@pytest.fixture(scope="module")
def launched(prepared):
    """The module's federation; each test gets the faulty adapter and the
    broker fresh (``faulty``), ON's and QC's adapters serve them all."""
    p = prepared
    launcher = LocalFederation(p.workdir, p.federation_path, p.policies_dir)
    with launcher:
        yield launcher
    assert not launcher.processes


@pytest.fixture
def faulty(prepared, launched):
    """A fresh broker and BC adapter per test, on their ports: no breaker
    state, killed process or fake carries over (ON and QC stay as they are)."""
    p = prepared
    before = {name: process.pid for name, process in launched.processes.items()}
    launched.restart(f"adapter-{FAULTY.lower()}", "broker")
    fresh = {name: process.pid for name, process in launched.processes.items()}
    assert all(fresh[n] != before[n] for n in (f"adapter-{FAULTY.lower()}", "broker"))
    assert all(fresh[f"adapter-{c.lower()}"] == before[f"adapter-{c.lower()}"] for c in HEALTHY)
    f = Faulty(Running(p.workdir, p.federation, launched, p.generated, p.policy), p)
    try:
        yield f
    finally:
        f.stop_fakes()


def timed_query(f: Faulty, sql: str, *, timeout: float = TIMEOUT_S, allow_partial: bool):
    started = time.monotonic()
    try:
        with f.client() as client:
            return client.query(sql, timeout=timeout, allow_partial=allow_partial)
    finally:
        elapsed = time.monotonic() - started
        print(f"answered in {elapsed:.2f} s (deadline {timeout:.0f} s)")
        assert elapsed < timeout + MARGIN_S


def assert_partial_without_bc(f: Faulty, result, sql: str, state: int, error: str) -> None:
    assert rows(result.table) == f.expected(sql)
    assert {r[0] for r in rows(result.table)} == set(HEALTHY)
    assert result.trailer.partial
    statuses = {s.source: s for s in result.trailer.sources}
    assert sorted(statuses) == sorted(SOURCES)
    for code in HEALTHY:
        assert statuses[code].state == OK and not statuses[code].error
        assert statuses[code].rows > 0
    bc = statuses[FAULTY]
    assert bc.state == state, broker_pb2.SourceState.Name(bc.state)
    assert bc.rows == 0
    assert error in bc.error, bc.error


def assert_only_bc_failed(exc: grpc.RpcError, error: str) -> None:
    """UNAVAILABLE naming BC, and only BC, with its reason: the sources the broker
    stopped because BC failed (fail fast) are not blamed."""
    assert exc.code() == grpc.StatusCode.UNAVAILABLE
    details = exc.details() or ""
    named, _, rest = details.partition(": missing from the answer: ")
    assert named.removeprefix("source ").split(", ") == [FAULTY], details
    reasons = dict(re.findall(r"(BC|ON|QC) \((.*?)\)(?:; |\. Retry)", rest, re.DOTALL))
    assert error in reasons[FAULTY], details
    for code in HEALTHY:  # the sources stopped because of it are not blamed
        assert code not in reasons, details


# (a) an adapter killed before the query -----------------------------------


def test_a_killed_adapter_fails_a_complete_query_naming_it(faulty):
    faulty.kill_adapter()
    with pytest.raises(grpc.RpcError) as caught:
        timed_query(faulty, COUNT_SQL, allow_partial=False)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert_only_bc_failed(caught.value, "unavailable")
    faulty.assert_broker_healthy()


def test_a_killed_adapter_is_left_out_of_a_partial_answer(faulty):
    faulty.kill_adapter()
    result = timed_query(faulty, COUNT_SQL, allow_partial=True)
    assert_partial_without_bc(
        faulty, result, COUNT_SQL, broker_pb2.SOURCE_STATE_UNAVAILABLE, "unavailable"
    )
    faulty.assert_broker_healthy()


# (b) a hanging adapter ------------------------------------------------------


def test_a_hanging_adapter_times_out_and_the_others_answer_in_time(faulty):
    faulty.replace_with_fake("hang")
    deadline = 3.0
    started = time.monotonic()
    result = timed_query(faulty, COUNT_SQL, timeout=deadline, allow_partial=True)
    elapsed = time.monotonic() - started
    print(f"\nTIME TO ANSWER with BC hanging: {elapsed:.2f} s (client timeout {deadline} s)")
    assert elapsed < deadline + 1.0
    faulty.wait_for_scan(within_s=0)  # BC was asked, and hung
    assert_partial_without_bc(
        faulty, result, COUNT_SQL, broker_pb2.SOURCE_STATE_TIMED_OUT, "deadline"
    )
    faulty.assert_broker_healthy()


# (c) a malformed Arrow batch and (d) the wrong schema -----------------------


@pytest.mark.parametrize(
    ("mode", "error", "state"),
    [
        ("malformed", "malformed Arrow batch", broker_pb2.SOURCE_STATE_UNAVAILABLE),
        ("wrong_schema", "answered with schema", broker_pb2.SOURCE_STATE_UNAVAILABLE),
        ("oversized", "RESOURCE_EXHAUSTED", broker_pb2.SOURCE_STATE_ERROR),
        ("refuse", "refused: source BC does not release", broker_pb2.SOURCE_STATE_REFUSED),
    ],
)
def test_unusable_data_is_a_per_source_error(faulty, mode, error, state):
    faulty.replace_with_fake(mode)
    result = timed_query(faulty, ROWS_SQL, allow_partial=True)
    assert_partial_without_bc(faulty, result, ROWS_SQL, state, error)
    with pytest.raises(grpc.RpcError) as caught:
        timed_query(faulty, ROWS_SQL, allow_partial=False)
    assert_only_bc_failed(caught.value, error)
    faulty.assert_broker_healthy()


# (e) an adapter that dies mid-stream ---------------------------------------


def test_a_crash_mid_stream_keeps_none_of_that_sources_rows(faulty):
    fake = faulty.replace_with_fake("crash_mid_stream")
    result = timed_query(faulty, ROWS_SQL, allow_partial=True)
    assert fake.wait(timeout=5) == 1  # it did die mid-stream
    assert_partial_without_bc(
        faulty, result, ROWS_SQL, broker_pb2.SOURCE_STATE_UNAVAILABLE, "unavailable"
    )
    assert not any(str(r[1]).startswith("FAKE-") for r in rows(result.table))
    faulty.assert_broker_healthy()


# (f) the broker stopped with a query in flight -----------------------------


def test_a_stopped_broker_ends_an_in_flight_query_within_its_grace(faulty):
    faulty.replace_with_fake("hang")
    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            with faulty.client() as client:
                outcome["result"] = client.query(COUNT_SQL, timeout=30, allow_partial=True)
        except grpc.RpcError as exc:
            outcome["error"] = exc
        outcome["ended"] = time.monotonic()

    asking = threading.Thread(target=ask, daemon=True)
    asking.start()
    faulty.wait_for_scan()  # the query is in flight, BC's scan hanging
    assert "ended" not in outcome
    broker = faulty.launcher.processes["broker"]
    stopped = time.monotonic()
    broker.terminate()  # SIGTERM
    asking.join(timeout=SHUTDOWN_GRACE_S + 3)
    assert not asking.is_alive(), "the in-flight query outlived the broker's grace"
    took = outcome["ended"] - stopped
    print(
        f"\nin-flight query ended {took:.2f} s after SIGTERM: {outcome.get('error') or 'answered'}"
    )
    assert took < SHUTDOWN_GRACE_S + MARGIN_S
    assert broker.wait(timeout=SHUTDOWN_GRACE_S + 3) == 0
    if "error" in outcome:
        assert outcome["error"].code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    else:  # answered within the grace: without BC, whose scan never came back
        result = outcome["result"]
        statuses = {s.source: s.state for s in result.trailer.sources}
        assert result.trailer.partial and statuses[FAULTY] != OK


def test_an_open_circuit_shows_in_health_and_answers_at_once(faulty):
    """Five failures in a row open BC's circuit: health says NOT_SERVING for BC
    (the others stay SERVING) and BC's scans fail at once, marked CIRCUIT_OPEN."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from accord import tls
    from app.serve import source_health_name

    faulty.kill_adapter()
    sql = "SELECT count(*) FROM offenders"
    for _ in range(5):
        timed_query(faulty, sql, allow_partial=True)
    result = timed_query(faulty, sql, allow_partial=True)
    statuses = {s.source: s for s in result.trailer.sources}
    assert statuses[FAULTY].state == broker_pb2.SOURCE_STATE_CIRCUIT_OPEN
    assert statuses[FAULTY].elapsed_ms < 50  # not even tried
    ca, cert, key = faulty.prepared.workdir.partner_credentials("crown_attorney")
    with grpc.secure_channel(
        faulty.launcher.broker_address, tls.channel_credentials(ca, cert, key)
    ) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        def status(code: str) -> int:
            request = health_pb2.HealthCheckRequest(service=source_health_name(code))
            answer: int = health.Check(request, timeout=5).status
            return answer

        assert status(FAULTY) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert all(status(code) == health_pb2.HealthCheckResponse.SERVING for code in HEALTHY)
    faulty.assert_broker_healthy()


def test_a_crash_mid_stream_voids_a_streamed_answer(faulty):
    """A plain query streams batch by batch; BC dies after sending one batch.
    Rows already sent cannot be taken back, so the answer is void: the call
    ends in UNAVAILABLE naming BC, even though a partial answer was allowed."""
    faulty.replace_with_fake("crash_mid_stream")
    sql = "SELECT source, source_person_id FROM offenders"
    with pytest.raises(grpc.RpcError) as caught:
        timed_query(faulty, sql, allow_partial=True)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "source BC: failed after part of its rows went out" in (caught.value.details() or "")
    faulty.assert_broker_healthy()


def test_a_database_gone_behind_its_adapter_is_named(faulty):
    """The adapter runs, its database does not answer: UNAVAILABLE naming BC."""
    path = faulty.prepared.workdir.path / faulty.prepared.federation.sources[FAULTY].backend.path
    hidden = path.with_suffix(".away")
    path.rename(hidden)
    try:
        result = timed_query(faulty, ROWS_SQL, allow_partial=True)
        assert_partial_without_bc(
            faulty, result, ROWS_SQL, broker_pb2.SOURCE_STATE_UNAVAILABLE, "is missing"
        )
        with pytest.raises(grpc.RpcError) as caught:
            timed_query(faulty, ROWS_SQL, allow_partial=False)
        assert_only_bc_failed(caught.value, "is missing")
    finally:
        hidden.rename(path)
    faulty.assert_broker_healthy()


# (h) a history, whose parts' scans go to each source in one batch -----------


def person_in(faulty: Faulty, sources: tuple[str, ...]) -> tuple[str, set[tuple[str, str]]]:
    """An FPS number with a file in every one of ``sources``, and its files there."""
    files: dict[str, set[tuple[str, str]]] = {}
    for code in sources:
        for row in faulty.prepared.generated[code]["offenders"].to_pylist():
            if row["fps_number"]:
                files.setdefault(row["fps_number"], set()).add((code, row["source_person_id"]))
    fps = next(f for f, found in sorted(files.items()) if {c for c, _ in found} == set(sources))
    return fps, files[fps]


@pytest.mark.parametrize("fault", ["killed", "malformed", "hang"])
def test_a_history_with_one_faulty_system_names_it_and_keeps_the_others(faulty, fault):
    """Killed: the batch call fails before any message and each scan is
    retried alone, in vain. The fakes serve Scan only: their ScanBatch is
    UNIMPLEMENTED, so the broker asks each scan alone, and then meets the
    fault itself (a malformed batch, or no answer before the deadline)."""
    if fault == "killed":
        faulty.kill_adapter()
    else:
        faulty.replace_with_fake(fault)
    fps, healthy_files = person_in(faulty, HEALTHY)
    started = time.monotonic()
    with faulty.client() as client:
        history = client.history(fps_number=fps, timeout=3.0)
    assert time.monotonic() - started < 3.0 + 1.0
    assert history.found and history.partial
    assert any("BC did not answer in full" in note for note in history.notes)
    linked = {(f.source, f.source_person_id) for f in history.files if f.link == FPS_LINK}
    assert linked == healthy_files
    for part in history.parts:
        states = {s.source: s.state for s in part.sources}
        assert states["ON"] == states["QC"] == broker_pb2.SOURCE_STATE_OK
        assert states["BC"] != broker_pb2.SOURCE_STATE_OK
    faulty.assert_broker_healthy()
