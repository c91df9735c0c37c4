"""Starts a whole federation on loopback as child processes: one adapter per
source and the broker. Used by ``accord demo`` and by the integration tests.

With ``supervise=True`` it is also their supervisor: a child that dies is
named in the log and started again on the same ports (so the broker's
endpoints, partners' ``broker.addr`` and Prometheus' targets stay right),
after a backoff that grows while it keeps dying; the others keep serving
meanwhile (the broker answers partially without a dead adapter). What it
supervises is in ``WORKDIR/run/federation.json`` for ``accord status``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from accord.errors import ConfigError
from accord.federation import load_federation
from accord.workdir import write_text_atomically

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from accord.workdir import Workdir

log = logging.getLogger("accord.launcher")

#: Seconds a child gets to start listening, and to stop after SIGTERM.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
#: Seconds before the first restart of a child that died; doubled for each
#: death in a row, up to the cap. A child that served STABLE_S starts over.
RESTART_BACKOFF_S = 0.5
RESTART_BACKOFF_CAP_S = 15.0
STABLE_S = 30.0
#: Seconds between two looks at the children.
POLL_S = 0.1


@dataclass
class Child:
    """One supervised process: how to start it, and what it did so far."""

    name: str
    args: list[str]  # ``accord serve`` arguments, ports aside
    port_file: Path
    address: str = ""  # HOST:PORT it serves on, fixed after the first start
    metrics_address: str = ""
    flight_address: str = ""  # the broker's Flight SQL endpoint
    pid: int = 0
    state: str = "starting"  # starting | serving | restarting | stopped
    restarts: int = 0
    deaths_in_a_row: int = 0
    last_exit: str = ""  # how it last ended ("killed by SIGKILL", "exit status 1")
    started_at: float = 0.0  # monotonic

    def port_args(self) -> list[str]:
        """The same ports as its first start (empty before it)."""
        if not self.address:
            return []
        ports = [
            "--port",
            self.address.rsplit(":", 1)[1],
            "--metrics-port",
            self.metrics_address.rsplit(":", 1)[1],
        ]
        if self.flight_address:
            ports += ["--flight-port", self.flight_address.rsplit(":", 1)[1]]
        return ports

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "pid": self.pid,
            "address": self.address,
            "metrics": self.metrics_address,
            **({"flight_sql": self.flight_address} if self.flight_address else {}),
            "state": self.state,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }


def exit_description(returncode: int) -> str:
    """How a process ended, as an operator reads it.

    >>> exit_description(-9), exit_description(3)
    ('killed by SIGKILL', 'exit status 3')
    """
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def restart_delay(deaths_in_a_row: int) -> float:
    """Seconds to wait before restarting a child that died that many times in a row.

    >>> [restart_delay(n) for n in (1, 2, 3, 10)]
    [0.5, 1.0, 2.0, 15.0]
    """
    return min(RESTART_BACKOFF_S * 2.0 ** max(deaths_in_a_row - 1, 0), RESTART_BACKOFF_CAP_S)


class LocalFederation:
    """Adapters and broker as child processes; a context manager."""

    def __init__(
        self,
        workdir: Workdir,
        federation_path: Path,
        policies_dir: Path,
        *,
        supervise: bool = False,
    ) -> None:
        self.workdir = workdir
        self.federation_path = federation_path
        self.policies_dir = policies_dir
        self.federation = load_federation(federation_path)
        self.supervise = supervise
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.children: dict[str, Child] = {}
        self.adapter_addresses: dict[str, str] = {}
        self.broker_address = ""
        #: HOST:PORT of the broker's Flight SQL endpoint.
        self.flight_address = ""
        #: HOST:PORT of each process's /metrics, by process name ("broker", "adapter-bc").
        self.metrics_addresses: dict[str, str] = {}
        self._stopping = threading.Event()
        self._no_restarts = False
        self._supervisor: threading.Thread | None = None
        self._state_lock = threading.Lock()

    def __enter__(self) -> LocalFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, child: Child) -> None:
        child.port_file.unlink(missing_ok=True)
        self.workdir.logs.mkdir(parents=True, exist_ok=True)
        log_file = (self.workdir.logs / f"{child.name}.log").open("ab")
        command = [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            *child.args,
            *child.port_args(),
            "--workdir",
            str(self.workdir.path),
            "--federation",
            str(self.federation_path),
            "--policies",
            str(self.policies_dir),
            "--port-file",
            str(child.port_file),
        ]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log_file.close()
        self.processes[child.name] = process
        self.children[child.name] = child
        child.pid, child.state, child.started_at = process.pid, "starting", time.monotonic()

    def _wait_for(self, name: str, port_file: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        process = self.processes[name]
        while time.monotonic() < deadline:
            if port_file.is_file():
                return port_file.read_text().strip()
            if process.poll() is not None:
                raise ConfigError(
                    f"{name} exited with status {process.returncode} before serving; "
                    f"see {self.workdir.logs / (name + '.log')}"
                )
            if self._stopping.is_set() or self._no_restarts:
                raise ConfigError(f"{name}: stopped before it served")
            time.sleep(0.05)
        raise ConfigError(f"{name} did not start within {START_TIMEOUT_S:.0f} s")

    def _serving(self, child: Child) -> None:
        """``child`` wrote its port file: its addresses are known."""
        address = self._wait_for(child.name, child.port_file)
        # Each process writes its metrics address before its port file.
        metrics = self.workdir.metrics_address_file(child.name).read_text().strip()
        moved = bool(child.metrics_address) and metrics != child.metrics_address
        child.address, child.metrics_address, child.state = address, metrics, "serving"
        self.metrics_addresses[child.name] = metrics
        if moved:  # its old metrics port was taken: Prometheus must look elsewhere
            self._write_targets()

    def start(self) -> None:
        for code in self.federation.sources:
            self._spawn(
                Child(
                    f"adapter-{code.lower()}",
                    ["adapter", "--source", code],
                    self.workdir.adapter_address_file(code),
                )
            )
        for code in self.federation.sources:
            child = self.children[f"adapter-{code.lower()}"]
            self._serving(child)
            self.adapter_addresses[code] = child.address
        endpoints = [f"--endpoint={c}={a}" for c, a in self.adapter_addresses.items()]
        self._spawn(Child("broker", ["broker", *endpoints], self.workdir.broker_address_file()))
        broker = self.children["broker"]
        self._serving(broker)
        self.broker_address = broker.address
        # The broker writes its Flight SQL address before its port file.
        broker.flight_address = self.workdir.broker_flight_address_file().read_text().strip()
        self.flight_address = broker.flight_address
        self._write_targets()
        self._write_state()
        if self.supervise:
            self._supervisor = threading.Thread(
                target=self._supervise, name="supervisor", daemon=True
            )
            self._supervisor.start()

    def restart(self, *names: str) -> None:
        """Stops the named children (what lingers past STOP_TIMEOUT_S is
        killed) and starts them again on their ports, in the order given (an
        adapter before the broker that reads it): a fresh process, the others
        untouched."""
        for name in names:
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in names:
            child = self.children[name]
            self._spawn(child)
            self._serving(child)
            child.restarts += 1
        self._write_state()

    def _write_targets(self) -> None:
        write_prometheus_targets(
            self.workdir.prometheus_targets_dir(),
            self.metrics_addresses["broker"],
            {
                code: self.metrics_addresses[f"adapter-{code.lower()}"]
                for code in self.federation.sources
            },
        )

    def status(self) -> list[dict[str, object]]:
        """Each child as ``run/federation.json`` shows it."""
        with self._state_lock:
            return [child.describe() for child in self.children.values()]

    def _write_state(self) -> None:
        state = {"supervisor_pid": os.getpid(), "processes": self.status()}
        write_text_atomically(
            self.workdir.supervisor_state_file(), json.dumps(state, indent=2) + "\n"
        )

    def _supervise(self) -> None:
        """Restarts each child that dies, until ``stop()``."""
        due: dict[str, float] = {}  # child -> when to restart it
        while not self._stopping.wait(POLL_S):
            if self._no_restarts:
                continue
            now = time.monotonic()
            for name, child in list(self.children.items()):
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        self._restart(child, due)
                    continue
                code = self.processes[name].poll()
                if code is None:
                    if child.deaths_in_a_row and now - child.started_at >= STABLE_S:
                        child.deaths_in_a_row = 0
                    continue
                child.deaths_in_a_row += 1
                child.last_exit = exit_description(code)
                child.state = "restarting"
                delay = restart_delay(child.deaths_in_a_row)
                due[name] = now + delay
                log.error(
                    "%s (pid %d) died: %s; restarting it in %.1f s; the others keep serving",
                    name,
                    child.pid,
                    child.last_exit,
                    delay,
                )
                self._write_state()

    def _restart(self, child: Child, due: dict[str, float]) -> None:
        try:
            self._spawn(child)
            self._serving(child)
        except (ConfigError, OSError) as exc:
            if self._stopping.is_set() or self._no_restarts:
                return
            child.deaths_in_a_row += 1
            delay = restart_delay(child.deaths_in_a_row)
            due[child.name] = time.monotonic() + delay
            child.state = "restarting"
            log.error("%s did not come back: %s; next try in %.1f s", child.name, exc, delay)
        else:
            child.restarts += 1
            log.warning(
                "%s restarted (pid %d) on %s after %s",
                child.name,
                child.pid,
                child.address,
                child.last_exit,
            )
        self._write_state()

    def stopping(self) -> None:
        """No more restarts: the federation is being stopped. Safe in a
        signal handler: it takes no lock (Event.set does, and a second
        signal landing inside the first handler would deadlock on it)."""
        self._no_restarts = True

    def stop(self) -> None:
        """SIGTERM everything at once, then wait (one deadline for all);
        SIGKILL what lingers."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
            self._supervisor = None
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killed", name, STOP_TIMEOUT_S)
                process.kill()
                process.wait()
        self.processes.clear()
        for child in self.children.values():
            child.state = "stopped"
        for path in (
            self.workdir.broker_address_file(),
            self.workdir.broker_flight_address_file(),
            *(self.workdir.adapter_address_file(c) for c in self.federation.sources),
            *(self.workdir.metrics_address_file(n) for n in self.metrics_addresses),
            *self.workdir.prometheus_targets_dir().glob("*.json"),
            self.workdir.supervisor_state_file(),
        ):
            path.unlink(missing_ok=True)
        self.metrics_addresses.clear()


def write_prometheus_targets(directory: Path, broker: str, adapters: dict[str, str]) -> None:
    """Prometheus ``file_sd_configs`` targets for the two jobs of
    deploy/prometheus.yml: ``broker.json``, and ``adapters.json`` with each
    adapter labelled ``adapter="<source code>"`` so alerts name the system.
    (Not ``source``: the adapters' own metrics carry that label, and a target
    label of the same name would rename theirs to ``exported_source``.)"""
    jobs = {
        "broker": [{"targets": [broker], "labels": {}}],
        "adapters": [
            {"targets": [address], "labels": {"adapter": code}}
            for code, address in sorted(adapters.items())
        ],
    }
    for job, groups in jobs.items():
        write_text_atomically(directory / f"{job}.json", json.dumps(groups, indent=2) + "\n")
