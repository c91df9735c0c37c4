"""``accord demo --serve`` as a person runs it: a dead adapter is named and
restarted while the demo stays up, ``accord status`` shows every process,
and Ctrl-C (twice, as a terminal and a wrapper both deliver it) stops
everything promptly, each process logging that it stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from accord.workdir import Workdir
from app.launcher import STOP_TIMEOUT_S

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "app.cli", "demo", "--serve", "--scale", "0.002"]
#: Seconds for certificates, data, the start and the samples on a busy machine.
START_S = 180.0


def wait_until(what: str, check: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within_s:.0f} s")
        time.sleep(0.1)


def accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_serve_restarts_a_dead_adapter_and_stops_promptly_on_ctrl_c(tmp_path):
    workdir = Workdir(tmp_path / "wd")
    out, err = (tmp_path / "demo.out").open("w"), (tmp_path / "demo.err").open("w")
    demo = subprocess.Popen(
        [*DEMO, "--workdir", str(workdir.path)],
        cwd=REPO,
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(
            "the demo serving",
            lambda: (
                "Serving until Ctrl-C" in (tmp_path / "demo.out").read_text()
                or demo.poll() is not None
            ),
            START_S,
        )
        assert demo.poll() is None, (tmp_path / "demo.err").read_text()
        # The Flight SQL endpoint's address, printed and in the run directory.
        flight = workdir.broker_flight_address_file().read_text().strip()
        assert (
            f"Flight SQL (ADBC, JDBC, BI tools; docs/FLIGHT_SQL.md) on {flight}"
            in (tmp_path / "demo.out").read_text()
        )

        status = accord("status", "--json", "--workdir", str(workdir.path))
        assert status.returncode == 0, status.stdout + status.stderr
        processes = {p["name"]: p for p in json.loads(status.stdout)}
        assert len(processes) == 7
        assert {(p["health"], p["ready"]) for p in processes.values()} == {("SERVING", "ready")}

        # the web console beside the federation, its demo sign-in printed once
        shown = (tmp_path / "demo.out").read_text()
        found = re.search(r"web console \(crown_attorney\): (http://\S+)", shown)
        password = re.search(r"with password (\S+) \(printed once", shown)
        assert found and password, shown
        with urllib.request.urlopen(found.group(1) + "signin", timeout=30) as page:
            assert page.status == 200 and page.headers["cache-control"] == "no-store"
        users = (workdir.path / "console-users.yaml").read_text()
        assert "$argon2id$" in users and password.group(1) not in users

        os.kill(processes["adapter-bc"]["pid"], signal.SIGKILL)

        def restarted() -> bool:
            state = json.loads(workdir.supervisor_state_file().read_text())
            bc = next(p for p in state["processes"] if p["name"] == "adapter-bc")
            return bool(bc["restarts"] == 1 and bc["state"] == "serving")

        wait_until("adapter-bc restarted", restarted, 30)
        assert demo.poll() is None  # the demo stayed up
        logged = (tmp_path / "demo.err").read_text()
        assert "adapter-bc (pid" in logged and "died: killed by SIGKILL" in logged

        stopping = time.monotonic()
        demo.send_signal(signal.SIGINT)
        demo.send_signal(signal.SIGINT)  # a second one must not cut the stop short
        assert demo.wait(timeout=STOP_TIMEOUT_S + 5) == 0
        took = time.monotonic() - stopping
        print(f"stopped in {took:.1f} s")
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        out.close()
        err.close()
    assert "stopped in" in (tmp_path / "demo.out").read_text()
    assert took < STOP_TIMEOUT_S
    for name in processes:
        lines = (workdir.logs / f"{name}.log").read_text().splitlines()
        assert any(json.loads(line)["message"].endswith(" stopped") for line in lines[-5:]), name
    assert not workdir.supervisor_state_file().exists()
    assert not workdir.broker_flight_address_file().exists()
