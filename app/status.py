"""``accord status``: each process of the federation in the work dir, its
address and its health, as its operator sees them.

The processes come from ``run/federation.json`` (what ``accord demo --serve``
supervises), or else from the address files servers started by hand write.
Each is asked twice, as an operator asks: gRPC health over mTLS with the
operator's certificate (``accord-operator``; partners' certificates are not
needed), and ``/readyz`` on its metrics port. The broker's answer also has
each source's health (its circuit breaker).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from accord import tls
from accord.errors import ConfigError
from accord.federation import load_federation

if TYPE_CHECKING:
    from pathlib import Path

    from accord.workdir import Workdir

#: Seconds each probe may take.
PROBE_TIMEOUT_S = 3.0
#: The broker's service name, and its per-source health names (app.serve).
BROKER_SERVICE = "accord.v1.Broker"


@dataclass
class ProcessStatus:
    name: str
    address: str
    metrics: str = ""
    pid: int = 0
    state: str = ""  # the supervisor's; "" for a process started by hand
    restarts: int = 0
    last_exit: str = ""
    health: str = ""  # SERVING, NOT_SERVING, or why it could not be asked
    ready: str = ""  # ready, not ready (and why), or why it could not be asked
    sources: dict[str, str] = field(default_factory=dict)  # the broker's, by source

    @property
    def ok(self) -> bool:
        return self.health == "SERVING" and self.ready == "ready"


def listed_processes(workdir: Workdir, federation_path: Path) -> list[ProcessStatus]:
    """What runs in ``workdir``: the supervisor's list, or the address files."""
    state_file = workdir.supervisor_state_file()
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if not _alive(int(state["supervisor_pid"])):
            raise ConfigError(
                f"{state_file} is left over from a supervisor (pid {state['supervisor_pid']}) "
                "that is no longer running; start the federation again with `accord demo --serve`"
            )
        return [
            ProcessStatus(
                name=str(p["name"]),
                address=str(p["address"]),
                metrics=str(p["metrics"]),
                pid=int(p["pid"]),
                state=str(p["state"]),
                restarts=int(p["restarts"]),
                last_exit=str(p["last_exit"]),
            )
            for p in state["processes"]
        ]
    names = [f"adapter-{c.lower()}" for c in load_federation(federation_path).sources]
    files = {n: workdir.adapter_address_file(n.removeprefix("adapter-")) for n in names}
    files["broker"] = workdir.broker_address_file()
    found = []
    for name, path in files.items():
        if path.is_file():
            metrics = workdir.metrics_address_file(name)
            found.append(
                ProcessStatus(
                    name,
                    path.read_text().strip(),
                    metrics.read_text().strip() if metrics.is_file() else "",
                )
            )
    if not found:
        raise ConfigError(
            f"no federation is running in {workdir.path} (no {state_file.name} and no "
            "address files in its run/); start one with `accord demo --serve`"
        )
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def probe(workdir: Workdir, process: ProcessStatus, sources: list[str]) -> None:
    """Fills in ``process``'s health, readiness and (broker) sources' health."""
    ca, (cert, key) = workdir.pki.ca_cert(), workdir.pki.operator()
    credentials = tls.channel_credentials(ca, cert, key)
    services = [""]
    if process.name == "broker":
        services += [f"{BROKER_SERVICE}/source/{code}" for code in sources]
    answers = grpc_health(process.address, credentials, services)
    process.health = answers.pop("")
    process.sources = {name.rsplit("/", 1)[1]: status for name, status in answers.items()}
    process.ready = http_ready(process.metrics) if process.metrics else "no metrics address"


def grpc_health(
    address: str, credentials: grpc.ChannelCredentials, services: list[str]
) -> dict[str, str]:
    """Each service's health status name, or why it could not be asked."""
    answers: dict[str, str] = {}
    with grpc.secure_channel(address, credentials, options=tls.CHANNEL_OPTIONS) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in services:
            try:
                reply = stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=PROBE_TIMEOUT_S
                )
                answers[service] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                code = exc.code()
                answers[service] = (
                    "unreachable"
                    if code == grpc.StatusCode.UNAVAILABLE
                    else f"refused ({code.name})"
                )
    return answers


def http_ready(metrics_address: str) -> str:
    """``ready``, ``not ready: <failed checks>``, or why /readyz did not answer."""
    url = f"http://{metrics_address}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as reply:
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return f"/readyz answered {exc.code}"
        body = json.loads(exc.read())
    except (OSError, ValueError):
        return "unreachable"
    failed = [
        f"{c['name']} ({c['detail']})" for c in body["checks"] if c["required"] and not c["ok"]
    ]
    return "ready" if body["ready"] else "not ready: " + ", ".join(failed)


def render(processes: list[ProcessStatus]) -> str:
    header = ("PROCESS", "PID", "STATE", "RESTARTS", "ADDRESS", "METRICS", "HEALTH", "READY")
    rows = [
        (
            p.name,
            str(p.pid or "-"),
            p.state or "-",
            str(p.restarts) + (f" (last: {p.last_exit})" if p.last_exit else ""),
            p.address,
            p.metrics or "-",
            p.health,
            p.ready,
        )
        for p in processes
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    for p in processes:
        if p.sources:
            lines.append(
                f"\n{p.name} sees its sources: "
                + ", ".join(f"{code} {status}" for code, status in sorted(p.sources.items()))
            )
    return "\n".join(line.rstrip() for line in lines)


def run_status(workdir: Workdir, federation_path: Path, *, as_json: bool = False) -> int:
    """Prints each process and its health; 0 when every one serves and is ready."""
    processes = listed_processes(workdir, federation_path)
    sources = sorted(load_federation(federation_path).sources)
    for process in processes:
        probe(workdir, process, sources)
    if as_json:
        print(json.dumps([p.__dict__ for p in processes], indent=2))
    else:
        print(render(processes))
    return 0 if all(p.ok for p in processes) else 1
