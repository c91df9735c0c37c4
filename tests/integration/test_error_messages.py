"""Every mistake a person commonly makes with ``accord`` gets a message that
says what happened and what to do next, with the query id where there is
one, and never a traceback or an internal name (issue 13).

One table: each row runs the real command line (the installed ``accord``,
in a process of its own) against the running federation, and checks its
exit status and what it printed. The advice names the program as it was
run (``.venv/bin/accord``, not a bare ``accord`` that is not on PATH).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.advice import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.conftest import Running

ACCORD = Path(sys.executable).parent / "accord"
#: What no message may show a person.
NEVER = ("Traceback", "<class ", "sqlglot", "GetCatalog for")
QUERY_ID = re.compile(r"query id [0-9a-f]{32}")


@dataclass(frozen=True)
class Mistake:
    """One row: the arguments after ``accord --workdir W``, the exit status,
    what the output must hold (``{accord}``: the program as run; ``{wd}``:
    the work dir), and whether it names the query id."""

    name: str
    argv: list[str]
    status: int
    says: list[str]
    query_id: bool = False
    absent: list[str] = field(default_factory=list)


POLICE = ["--as", "police", "--purpose", "investigation"]
COUNT = "SELECT source, count(*) FROM offenders GROUP BY source"
MISTAKES = [
    Mistake(
        "audit search --since yesterday",
        ["audit", "search", "--since", "yesterday"],
        EXIT_USAGE,
        ["'yesterday' is not an ISO 8601 date or time", "2026-11-01"],
    ),
    Mistake(
        "reconcile --since in words",
        ["audit", "reconcile", "--since", "last week"],
        EXIT_USAGE,
        ["is not an ISO 8601 date or time"],
    ),
    Mistake(
        "an unfinished WHERE",
        ["query", "SELECT * FROM offenders WHERE", *POLICE],
        EXIT_FAILED,
        [
            "the WHERE clause is incomplete: write a condition after WHERE",
            "{accord} catalog --as police",
        ],
        query_id=True,
        absent=["Required keyword"],
    ),
    Mistake(
        "an operator without its right side",
        ["query", "SELECT * FROM offenders WHERE status =", *POLICE],
        EXIT_FAILED,
        ["the query ends before the right side of ="],
        query_id=True,
    ),
    Mistake(
        "a timeout too short for the sources",
        ["query", COUNT, *POLICE, "--timeout", "0.001"],
        EXIT_FAILED,
        ["what to do: give the query more time (--timeout 60", "--allow-partial"],
        query_id=True,
    ),
    Mistake(
        "a negative timeout",
        ["query", COUNT, *POLICE, "--timeout", "-5"],
        EXIT_USAGE,
        ["-5 is not a positive number of seconds"],
    ),
    Mistake(
        "a zero timeout",
        ["explain", COUNT, *POLICE, "--timeout", "0"],
        EXIT_USAGE,
        ["0 is not a positive number of seconds"],
    ),
    Mistake(
        "a timeout in words",
        ["query", COUNT, *POLICE, "--timeout", "soon"],
        EXIT_USAGE,
        ["'soon' is not a number of seconds"],
    ),
    Mistake(
        "a misspelt partner",
        ["query", COUNT, "--as", "polise", "--purpose", "investigation"],
        EXIT_USAGE,
        ["no certificate for partner 'polise'", "did you mean police?", "known partners: "],
        absent=["certs init"],
    ),
    Mistake(
        "a misspelt partner for the catalog",
        ["catalog", "--as", "crown_atorney"],
        EXIT_USAGE,
        ["did you mean crown_attorney?", "{accord} certs issue --kind partner"],
    ),
    Mistake(
        "a misspelt column",
        ["query", "SELECT surnme FROM offenders", *POLICE],
        EXIT_FAILED,
        ["unknown column 'surnme' (did you mean surname?)", "{accord} catalog --as police"],
        query_id=True,
    ),
    Mistake(
        "a misspelt column in explain",
        ["explain", "SELECT birth_dat FROM offenders", *POLICE],
        EXIT_FAILED,
        ["did you mean birth_date?", "{accord} catalog --as police"],
        query_id=True,
    ),
    Mistake(
        "a column the role may not see",
        ["query", "SELECT address FROM offenders", "--as", "statistics"],
        EXIT_FAILED,
        ["PERMISSION_DENIED", "{accord} catalog --as statistics"],
        query_id=True,
    ),
    Mistake(
        "a purpose the role does not hold",
        ["query", COUNT, "--as", "police", "--purpose", "investigatoin"],
        EXIT_FAILED,
        ["may declare: investigation, supervision", "--purpose"],
        query_id=True,
    ),
    Mistake(
        "no case reference where the role needs one",
        ["query", COUNT, "--as", "crown_attorney", "--purpose", "bail_hearing"],
        EXIT_FAILED,
        [
            "must give a case reference",
            "what to do: give the file's case reference with --case-ref",
        ],
        query_id=True,
    ),
    Mistake(
        "two statements",
        ["query", "SELECT 1; SELECT 2", *POLICE],
        EXIT_FAILED,
        ["send exactly one statement"],
        query_id=True,
    ),
    Mistake(
        "audit verify of a directory with no trail",
        ["audit", "verify", "{wd}/no-such-trail"],
        EXIT_USAGE,
        ["no audit trail here", "--workdir"],
        absent=["TAMPERED", "None"],
    ),
    Mistake(
        "audit search of a directory with no trail",
        ["audit", "search", "{wd}/no-such-trail"],
        EXIT_USAGE,
        ["no audit trail here"],
    ),
    Mistake(
        "a trail that is neither the broker's nor an adapter's",
        ["audit", "verify", "--trail", "adaptor:BC"],
        EXIT_USAGE,
        ["use broker or adapter:CODE"],
    ),
    Mistake(
        "an adapter without its source",
        ["serve", "adapter"],
        EXIT_USAGE,
        ["`{accord} serve adapter` needs --source CODE"],
    ),
    Mistake(
        "revoking a certificate nobody has",
        ["certs", "revoke", "nobody"],
        EXIT_USAGE,
        ["no certificate with serial or name 'nobody'", "{accord} certs list"],
    ),
    Mistake(
        "a partner certificate without its name",
        ["certs", "issue", "--kind", "partner"],
        EXIT_USAGE,
        ["needs the partner's name (--name)"],
    ),
    Mistake(
        "a load target that is no database",
        ["datagen", "--target", "http://example.invalid/db"],
        EXIT_USAGE,
        ["is neither postgresql:// nor mysql://"],
    ),
]


def run_accord(
    workdir: Path, argv: list[str], **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(ACCORD), "--workdir", str(workdir), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parents[2],
        **kwargs,
    )


def assert_says(result: subprocess.CompletedProcess[str], says: list[str], wd: Path) -> None:
    output = result.stdout + result.stderr
    accord = os.path.relpath(ACCORD, Path(__file__).parents[2])
    for text in says:
        assert text.format(accord=accord, wd=wd) in output, output
    for text in NEVER:
        assert text not in output, output


@pytest.fixture(scope="module")
def copy(running: Running, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work dir with the federation's certificates and no running broker:
    commands that write (certs) or that need no broker run here."""
    directory = tmp_path_factory.mktemp("mistakes")
    shutil.copytree(running.workdir.pki.directory, directory / "certs")
    return directory


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_each_mistake_says_what_happened_and_what_to_do(running: Running, copy: Path, mistake):
    writes = mistake.argv[0] in ("certs", "datagen", "serve")
    workdir = copy if writes else running.workdir.path
    argv = [a.format(wd=workdir) for a in mistake.argv]
    result = run_accord(workdir, argv)
    assert result.returncode == mistake.status, result.stdout + result.stderr
    assert_says(result, mistake.says, workdir)
    for text in mistake.absent:
        assert text not in result.stdout + result.stderr
    assert bool(QUERY_ID.search(result.stderr)) == mistake.query_id, result.stderr


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_stale_broker_address_says_the_broker_is_gone(copy: Path):
    """A crash leaves run/broker.addr behind: the message says so and how to
    start one, not gRPC's raw UNAVAILABLE."""
    (copy / "run").mkdir(exist_ok=True)
    (copy / "run" / "broker.addr").write_text(f"127.0.0.1:{closed_port()}\n")
    result = run_accord(copy, ["query", COUNT, *POLICE])
    assert result.returncode == EXIT_FAILED
    assert_says(
        result,
        [
            "no broker answers at 127.0.0.1:",
            f"read from {copy}/run/broker.addr",
            "may have stopped or crashed",
            "{accord} demo --serve",
            "--broker HOST:PORT",
        ],
        copy,
    )


def test_a_broker_address_given_is_not_said_to_be_read_from_a_file(copy: Path):
    result = run_accord(
        copy, ["catalog", "--as", "police", "--broker", f"127.0.0.1:{closed_port()}"]
    )
    assert result.returncode == EXIT_FAILED
    assert "no broker answers at 127.0.0.1:" in result.stderr
    assert "read from" not in result.stderr


def test_no_certificates_at_all_says_to_create_them(tmp_path: Path):
    result = run_accord(tmp_path, ["query", COUNT, *POLICE])
    assert result.returncode == EXIT_USAGE
    assert_says(result, ["no partner certificates in", "`{accord} certs init`"], tmp_path)


def test_a_reader_that_goes_away_ends_the_output_quietly(running: Running):
    """``accord audit search | head``: the pipe's reader closed before the
    output ended; no BrokenPipeError traceback, the shell's SIGPIPE status."""
    with running.client("police", purpose="investigation") as client:
        client.catalog()  # at least one record to print
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE
    try:
        result = subprocess.run(
            [str(ACCORD), "--workdir", str(running.workdir.path), "audit", "search"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == EXIT_BROKEN_PIPE, result.stderr
    assert result.stderr == ""


def test_a_policy_typo_is_one_problem(copy: Path, tmp_path: Path):
    """One typo in a role file, one problem, true, with the closest name."""
    policies = tmp_path / "policies"
    shutil.copytree(Path(__file__).parents[2] / "policies", policies)
    role = policies / "roles" / "police.yaml"
    role.write_text(role.read_text().replace("principal.jurisdiction", "principal.jurisdictoin"))
    result = run_accord(copy, ["policy", "check", "--policies", str(policies)])
    assert result.returncode == EXIT_FAILED
    problems = result.stdout.strip().splitlines()
    assert len(problems) == 1, problems
    assert "principal.jurisdictoin" in problems[0]
    assert "did you mean principal.jurisdiction?" in problems[0]
    assert "1 problem(s)" in result.stderr


def test_a_broken_role_file_is_not_also_a_missing_role(copy: Path, tmp_path: Path):
    policies = tmp_path / "policies"
    shutil.copytree(Path(__file__).parents[2] / "policies", policies)
    role = policies / "roles" / "police.yaml"
    role.write_text(role.read_text().replace("      surname: clear", "      surnme: clear", 1))
    result = run_accord(copy, ["policy", "check", "--policies", str(policies)])
    assert result.returncode == EXIT_FAILED
    problems = result.stdout.strip().splitlines()
    assert problems == [
        f"{role}:{problems[0].split(':')[1]}: unknown column 'surnme' of offenders "
        "(did you mean surname?)"
    ], problems


def test_a_missing_source_is_told_to_people_and_to_programs(running: Running, tmp_path: Path):
    """A broker whose BC adapter is gone. Without --allow-partial: exit 1, the
    advice, and for programs the ErrorInfo (reason, the source and how it
    failed, the query id, the same as in the trailing metadata and the
    message). With it: the rows, exit 3, and ``partial`` in the JSON."""
    import asyncio
    import json

    import grpc

    from accord.audit.keys import load_or_create_signing_key
    from accord.audit.log import AuditLog
    from accord.client import BrokerClient, error_info, query_id_of
    from tests.integration.conftest import broker_over

    audit = AuditLog(tmp_path / "audit", load_or_create_signing_key(tmp_path / "k.pem"))
    seen: dict[str, object] = {}

    def ask(port: int) -> None:
        broker = ["--broker", f"localhost:{port}"]
        seen["refused"] = run_accord(running.workdir.path, ["query", COUNT, *POLICE, *broker])
        seen["partial"] = run_accord(
            running.workdir.path,
            ["query", COUNT, *POLICE, *broker, "--allow-partial", "--format", "json"],
        )
        ca, cert, key = running.workdir.partner_credentials("police")
        with BrokerClient(f"localhost:{port}", ca, cert, key, purpose="investigation") as client:
            try:
                client.query(COUNT)
            except grpc.RpcError as exc:
                seen["error"] = exc

    async def scenario() -> None:
        gone = {"BC": f"127.0.0.1:{closed_port()}"}
        async with broker_over(running, audit, gone) as (port, _):
            await asyncio.to_thread(ask, port)

    asyncio.run(scenario())
    refused = seen["refused"]
    assert isinstance(refused, subprocess.CompletedProcess)
    assert refused.returncode == EXIT_FAILED, refused.stderr
    assert_says(refused, ["source BC", "what to do: retry later", "--allow-partial"], tmp_path)
    assert "127.0.0.1" not in refused.stderr.split("what to do")[0].split("UNAVAILABLE: ")[1]

    partial = seen["partial"]
    assert isinstance(partial, subprocess.CompletedProcess)
    assert partial.returncode == EXIT_PARTIAL, partial.stderr
    answer = json.loads(partial.stdout)
    assert answer["partial"] is True
    assert "BC" not in [row[0] for row in answer["rows"]]
    assert "WARNING: partial answer; missing sources: BC" in partial.stderr

    error = seen["error"]
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(error)
    assert info is not None
    assert (info.reason, info.domain) == ("SOURCES_MISSING", "accord.v1.Broker")
    assert info.metadata["source.BC"] == "unavailable"
    assert info.metadata["query_id"] == query_id_of(error)
    assert (error.details() or "").endswith(f"(query id {query_id_of(error)})")


def test_json_output_carries_partial_and_duckdb_names(running: Running):
    import json

    result = run_accord(running.workdir.path, ["query", COUNT, *POLICE, "--format", "json"])
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["partial"] is False
    assert answer["columns"] == ["source", "count_star()"]


def test_a_failing_demo_sample_is_reported_not_a_traceback(running: Running, monkeypatch, capsys):
    """`accord demo` whose sample fails: the failure with its query id and
    advice, the other samples still run, and the demo exits 1 saying how
    many failed."""
    import contextlib

    from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES
    from app import demo

    @contextlib.contextmanager
    def the_running_federation(*_: object, **__: object) -> Iterator[object]:
        yield running.launcher

    monkeypatch.setattr(demo, "prepare", lambda *_, **__: None)
    monkeypatch.setattr(demo, "LocalFederation", the_running_federation)
    monkeypatch.setattr(demo, "SAME_QUERIES", [])
    monkeypatch.setattr(
        demo,
        "SAMPLES",
        [("A sample that fails", "SELECT nosuch FROM offenders"), ("One that works", COUNT)],
    )
    status = demo.run_demo(
        running.workdir, DEFAULT_FEDERATION, DEFAULT_POLICIES, scale=0.005, seed=11, serve=False
    )
    out, err = capsys.readouterr()
    assert status == 1
    assert "accord: INVALID_ARGUMENT: unknown column 'nosuch'" in out
    assert QUERY_ID.search(out)
    assert "what to do: fix the SQL" in out
    assert "count_star()" in out  # the next sample ran
    assert "1 of 2 sample queries failed" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("request_fields", "field", "reason"),
    [
        (
            {"sql": "SELECT 1", "purpose": "investigation", "timeout_ms": -1},
            "timeout_ms",
            "INVALID_QUERY",
        ),
        ({"sql": "SELECT", "purpose": "investigation"}, "sql", "INVALID_QUERY"),
        ({"sql": COUNT, "purpose": "Investigation!"}, "purpose", "POLICY_DENIED"),
        (
            {"sql": COUNT, "purpose": "investigation", "case_ref": "no spaces"},
            "case_ref",
            "POLICY_DENIED",
        ),
    ],
    ids=["timeout_ms", "sql", "purpose", "case_ref"],
)
def test_a_bad_field_is_named_for_programs(running: Running, request_fields, field, reason):
    """The field at fault in a google.rpc.BadRequest, the kind in ErrorInfo,
    the query id in the trailing metadata and at the end of the message."""
    import grpc

    from accord import tls
    from accord.client import bad_fields, error_info, query_id_of
    from accord.v1 import broker_pb2, broker_pb2_grpc

    ca, cert, key = running.workdir.partner_credentials("police")
    with grpc.secure_channel(
        running.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
    ) as channel:
        stub = broker_pb2_grpc.BrokerStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Query(broker_pb2.QueryRequest(**request_fields), timeout=30))
    error = caught.value
    info = error_info(error)
    assert info is not None and info.reason == reason
    assert bad_fields(error) == [field]
    assert query_id_of(error) and info.metadata["query_id"] == query_id_of(error)
    assert (error.details() or "").endswith(f"(query id {query_id_of(error)})")
