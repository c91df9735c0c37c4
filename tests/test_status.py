"""``accord status`` without a running federation, and how it renders one."""

from __future__ import annotations

import json

import pytest

from accord.errors import ConfigError
from accord.workdir import DEFAULT_FEDERATION, Workdir
from app.status import ProcessStatus, listed_processes, render


def test_nothing_running_says_how_to_start_it(tmp_path):
    with pytest.raises(ConfigError, match=r"no federation is running in .*accord demo --serve"):
        listed_processes(Workdir(tmp_path), DEFAULT_FEDERATION)


def test_servers_started_by_hand_are_found_by_their_address_files(tmp_path):
    workdir = Workdir(tmp_path)
    workdir.run.mkdir()
    workdir.broker_address_file().write_text("127.0.0.1:4000\n")
    workdir.metrics_address_file("broker").write_text("127.0.0.1:4001\n")
    workdir.adapter_address_file("BC").write_text("127.0.0.1:4002\n")
    found = {p.name: (p.address, p.metrics) for p in listed_processes(workdir, DEFAULT_FEDERATION)}
    assert found == {
        "broker": ("127.0.0.1:4000", "127.0.0.1:4001"),
        "adapter-bc": ("127.0.0.1:4002", ""),
    }


def test_render_shows_each_process_and_the_sources_the_broker_sees():
    processes = [
        ProcessStatus(
            "adapter-bc",
            "127.0.0.1:4002",
            "127.0.0.1:4003",
            12,
            "restarting",
            2,
            "killed by SIGKILL",
            "unreachable",
            "unreachable",
        ),
        ProcessStatus(
            "broker",
            "127.0.0.1:4000",
            "127.0.0.1:4001",
            11,
            "serving",
            0,
            "",
            "SERVING",
            "ready",
            {"BC": "NOT_SERVING", "ON": "SERVING"},
        ),
    ]
    text = render(processes)
    lines = text.splitlines()
    assert lines[0].split() == [
        "PROCESS",
        "PID",
        "STATE",
        "RESTARTS",
        "ADDRESS",
        "METRICS",
        "HEALTH",
        "READY",
    ]
    assert lines[1].split()[:4] == ["adapter-bc", "12", "restarting", "2"]
    assert "(last: killed by SIGKILL)" in lines[1]
    assert text.endswith("broker sees its sources: BC NOT_SERVING, ON SERVING")
    assert [p.ok for p in processes] == [False, True]


def test_a_state_file_left_by_a_dead_supervisor_is_called_stale(tmp_path):
    workdir = Workdir(tmp_path)
    workdir.run.mkdir()
    # Above Linux's largest pid (2**22): no process has it.
    workdir.supervisor_state_file().write_text(
        json.dumps({"supervisor_pid": 2**22 + 1, "processes": []})
    )
    with pytest.raises(ConfigError, match=r"no longer running; start the federation again"):
        listed_processes(workdir, DEFAULT_FEDERATION)
