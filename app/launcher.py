"""Starts a whole federation on loopback as child processes: one adapter per
source and the broker. Used by ``accord demo`` and by the integration tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from accord.errors import ConfigError
from accord.federation import load_federation
from accord.workdir import write_text_atomically

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

    from accord.workdir import Workdir

#: Seconds a child gets to start listening, and to stop after SIGTERM.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class LocalFederation:
    """Adapters and broker as child processes; a context manager."""

    def __init__(self, workdir: Workdir, federation_path: Path, policies_dir: Path) -> None:
        self.workdir = workdir
        self.federation_path = federation_path
        self.policies_dir = policies_dir
        self.federation = load_federation(federation_path)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.adapter_addresses: dict[str, str] = {}
        self.broker_address = ""
        #: HOST:PORT of each process's /metrics, by process name ("broker", "adapter-bc").
        self.metrics_addresses: dict[str, str] = {}

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

    def _spawn(self, name: str, args: list[str], port_file: Path) -> None:
        port_file.unlink(missing_ok=True)
        self.workdir.logs.mkdir(parents=True, exist_ok=True)
        log = (self.workdir.logs / f"{name}.log").open("ab")
        command = [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            *args,
            "--workdir",
            str(self.workdir.path),
            "--federation",
            str(self.federation_path),
            "--policies",
            str(self.policies_dir),
            "--port-file",
            str(port_file),
        ]
        self.processes[name] = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

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
            time.sleep(0.05)
        raise ConfigError(f"{name} did not start within {START_TIMEOUT_S:.0f} s")

    def start(self) -> None:
        for code in self.federation.sources:
            self._spawn(
                f"adapter-{code.lower()}",
                ["adapter", "--source", code],
                self.workdir.adapter_address_file(code),
            )
        for code in self.federation.sources:
            name = f"adapter-{code.lower()}"
            self.adapter_addresses[code] = self._wait_for(
                name, self.workdir.adapter_address_file(code)
            )
        endpoints = [f"--endpoint={c}={a}" for c, a in self.adapter_addresses.items()]
        self._spawn("broker", ["broker", *endpoints], self.workdir.broker_address_file())
        self.broker_address = self._wait_for("broker", self.workdir.broker_address_file())
        # Each process writes its metrics address before its port file.
        for name in self.processes:
            path = self.workdir.metrics_address_file(name)
            self.metrics_addresses[name] = path.read_text().strip()
        write_prometheus_targets(
            self.workdir.prometheus_targets_dir(),
            self.metrics_addresses["broker"],
            {
                code: self.metrics_addresses[f"adapter-{code.lower()}"]
                for code in self.federation.sources
            },
        )

    def stop(self) -> None:
        """SIGTERM everything (broker first), then wait; SIGKILL what lingers."""
        order = sorted(self.processes, key=lambda n: n != "broker")
        for name in order:
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name in order:
            process = self.processes[name]
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for path in (
            self.workdir.broker_address_file(),
            *(self.workdir.adapter_address_file(c) for c in self.federation.sources),
            *(self.workdir.metrics_address_file(n) for n in self.metrics_addresses),
            *self.workdir.prometheus_targets_dir().glob("*.json"),
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
