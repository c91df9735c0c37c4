"""Fuzz a running broker over real mTLS: grammar-built, mutated and random
SQL (invalid UTF-8 and corrupt request bodies too) with random request
fields (purpose, case reference, deadline, ``allow_partial``, end user),
from partners of four roles. Every call ends in a status that is neither
INTERNAL nor UNKNOWN, within its deadline and a small margin, and leaves no
traceback in any process's log.

Its own small federation (two SQLite systems, small data, a 5 s longest
deadline), so the fuzz neither waits on large answers nor trips the
breakers or rate limits of the federation other tests share.

Bounded for CI; a longer hunt: ``ACCORD_FUZZ_EXAMPLES=2000 make fuzz``.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord import tls
from accord.federation import load_federation
from accord.metadata import END_USER_METADATA
from accord.v1 import broker_pb2
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from broker.policy.store import PolicySet
from tests import sqlfuzz
from tests.test_fuzz_prepare import role_catalog
from tests.test_policy_engine import FUZZ_BASES

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("ACCORD_FUZZ_EXAMPLES", "100"))
DERANDOMIZE = not os.environ.get("ACCORD_FUZZ_RANDOM")
SOURCES = ("CA-CSC", "BC")
#: The broker's default and longest deadline here (seconds).
LONGEST_S = 5.0
#: How far past its deadline a call may end: the trailer, the audit write
#: and a loaded two-core machine.
MARGIN_S = 2.0
PARTNERS = ["crown_attorney", "police", "residential_facility", "statistics"]
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
QUERY = "/accord.v1.Broker/Query"


class Federation:
    """The running broker, a raw channel per partner, and the logs' read offsets."""

    def __init__(self, workdir: Workdir, launcher: LocalFederation) -> None:
        self.workdir = workdir
        self.launcher = launcher
        self.channels: dict[str, grpc.Channel] = {}
        self.offsets: dict[Path, int] = {}
        self.new_log_text()  # start reading the logs from here

    def call(self, partner: str) -> grpc.UnaryStreamMultiCallable[bytes, broker_pb2.QueryResponse]:
        if partner not in self.channels:
            ca, cert, key = self.workdir.partner_credentials(partner)
            self.channels[partner] = grpc.secure_channel(
                self.launcher.broker_address,
                tls.channel_credentials(ca, cert, key),
                options=tls.CHANNEL_OPTIONS,
            )
        return self.channels[partner].unary_stream(
            QUERY,
            request_serializer=lambda body: body,  # bytes as drawn: invalid UTF-8 too
            response_deserializer=broker_pb2.QueryResponse.FromString,
        )

    def new_log_text(self) -> str:
        """What every process logged since the last call."""
        text = []
        for path in sorted(self.workdir.logs.glob("*.log")):
            with path.open("rb") as log:
                log.seek(self.offsets.get(path, 0))
                data = log.read()
            self.offsets[path] = self.offsets.get(path, 0) + len(data)
            text.append(data.decode("utf-8", "replace"))
        return "".join(text)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    tmp = tmp_path_factory.mktemp("fuzz")
    raw = yaml.safe_load(DEFAULT_FEDERATION.read_text())
    raw["sources"] = [s for s in raw["sources"] if s["code"] in SOURCES]
    federation_path = tmp / "federation.yaml"
    federation_path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    workdir = Workdir(tmp / "work")
    init_certs(workdir, federation_path, DEFAULT_POLICIES)
    write_federation_data(load_federation(federation_path), workdir.path, seed=5, scale=0.002)
    limits = {"ACCORD_DEFAULT_TIMEOUT_S": str(LONGEST_S), "ACCORD_MAX_TIMEOUT_S": str(LONGEST_S)}
    saved = {k: os.environ.get(k) for k in limits}
    os.environ.update(limits)  # the broker process inherits them
    try:
        with LocalFederation(workdir, federation_path, DEFAULT_POLICIES) as launcher:
            running = Federation(workdir, launcher)
            yield running
            for channel in running.channels.values():
                channel.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def encoded(text: str) -> bytes:
    """``text`` as bytes on the wire; a lone surrogate becomes invalid UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def request_body(sql: str, fields: dict[str, Any]) -> bytes:
    """A serialized QueryRequest whose sql field carries ``sql``'s bytes as
    they are (protobuf's own encoder would refuse invalid UTF-8)."""
    rest = broker_pb2.QueryRequest(
        purpose=fields["purpose"],
        case_ref=fields["case_ref"],
        allow_partial=fields["allow_partial"],
        timeout_ms=fields["timeout_ms"],
    ).SerializeToString()
    data = encoded(sql)
    return b"\x0a" + _varint(len(data)) + data + rest


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def deadline_s(fields: dict[str, Any]) -> float:
    """The deadline the broker gives the call (a negative one is refused)."""
    timeout_ms = fields["timeout_ms"]
    return LONGEST_S if timeout_ms <= 0 else min(timeout_ms / 1000, LONGEST_S)


def printable(text: str) -> str:
    """gRPC metadata values are printable ASCII; the client refuses others."""
    return "".join(c for c in text if " " <= c <= "~")


def check_call(live: Federation, partner: str, body: bytes, fields: dict[str, Any]) -> str:
    """One call: its status must not be INTERNAL/UNKNOWN, its end within the
    deadline, and no process may log a traceback for it."""
    end_user = printable(fields["end_user"])
    metadata = ((END_USER_METADATA, end_user),) if end_user else ()
    started = time.monotonic()
    outcome = "OK"
    try:
        for _ in live.call(partner)(body, timeout=LONGEST_S + 30, metadata=metadata):
            pass
    except grpc.RpcError as exc:
        code = exc.code()
        details = exc.details() or ""
        assert code not in NEVER, (code, details[:300])
        assert "Traceback" not in details
        outcome = code.name
    elapsed = time.monotonic() - started
    assert elapsed <= deadline_s(fields) + MARGIN_S, f"answered after {elapsed:.1f} s"
    logged = live.new_log_text()
    assert "Traceback" not in logged, logged[-3000:]
    return outcome


def _purposes() -> dict[str, list[str]]:
    """Purposes per partner, from the policy files."""
    policy = PolicySet.load(DEFAULT_POLICIES, load_federation(DEFAULT_FEDERATION))
    roles = {p: policy.registry.partners[p].role for p in PARTNERS}
    return {p: sorted(policy.roles[role].purposes) for p, role in roles.items()}


PURPOSES = _purposes()
CATALOGS = {p: role_catalog(p) for p in PARTNERS}

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    """(partner, sql, fields): the SQL mostly over the partner's own catalog."""
    partner = draw(st.sampled_from(PARTNERS))
    sql = draw(sqlfuzz.any_sql(FUZZ_BASES, CATALOGS[partner]))
    return partner, sql, draw(sqlfuzz.request_fields(PURPOSES[partner]))


@FUZZ
@given(requests(), st.integers(0, 3).map(bool))
def test_any_request_ends_in_a_clear_status_within_its_deadline(live, request, valid_fields):
    partner, sql, fields = request
    if valid_fields:  # most calls get past admission, so the SQL is what is tried
        fields = {
            **fields,
            "purpose": PURPOSES[partner][0],
            "case_ref": "FUZZ-1",
            "timeout_ms": max(fields["timeout_ms"], 0),
            "end_user": "fuzz-user",
        }
    event(check_call(live, partner, request_body(sql, fields), fields))


@FUZZ
@given(st.sampled_from(PARTNERS), st.binary(max_size=300))
def test_a_corrupt_request_body_is_refused(live, partner, body):
    fields = {"timeout_ms": 0, "end_user": "fuzz-user"}
    event(check_call(live, partner, body, fields))


@pytest.mark.parametrize(
    "entry", sqlfuzz.load_corpus("live"), ids=lambda e: e.get("title", e["sql"][:40])
)
def test_the_corpus_ends_in_a_clear_status(live, entry):
    partner = entry["partner"]
    fields = {
        "purpose": PURPOSES[partner][0],
        "case_ref": "FUZZ-1",
        "allow_partial": False,
        "timeout_ms": entry.get("timeout_ms", 0),
        "end_user": "fuzz-corpus",
    }
    sql = sqlfuzz.corpus_text(entry)
    check_call(live, partner, request_body(sql, fields), fields)
