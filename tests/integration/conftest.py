"""A whole federation on loopback: six adapter processes and the broker,
real gRPC over real mutual TLS, real SQLite files in each system's schema.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from accord.client import BrokerClient
from accord.federation import Federation, load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from adapters.datagen import generate, write_federation_data
from app.commands import init_certs
from app.launcher import LocalFederation
from bench.tpch import drop_databases, environment
from broker.policy.masks import partner_key
from broker.policy.store import PolicySet
from tests.integration.oracle import entitled_connection
from tests.integration.servers import MARIADB_SERVER, PG_SERVER, require_servers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    import duckdb
    import pyarrow as pa

    from accord.audit.log import AuditLog
    from broker.budget import PrivacyLedger
    from broker.history.linkage import LinkageModel
    from broker.metrics import BrokerMetrics
    from broker.readiness import Readiness

SEED = 11
SCALE = 0.005
EXAMPLE_FEDERATION = DEFAULT_FEDERATION.parent / "federation.example.yaml"


@dataclass
class Running:
    workdir: Workdir
    federation: Federation
    launcher: LocalFederation
    generated: dict[str, dict[str, pa.Table]]
    policy: PolicySet
    _oracles: dict[str, duckdb.DuckDBPyConnection] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.launcher.broker_address

    def client(self, partner: str = "crown_attorney", **kwargs: str) -> BrokerClient:
        ca, cert, key = self.workdir.partner_credentials(partner)
        return BrokerClient(self.address, ca, cert, key, **kwargs)

    def oracle(self, partner: str = "crown_attorney") -> duckdb.DuckDBPyConnection:
        """The partner's entitled view of the generated data (see oracle.py)."""
        if partner not in self._oracles:
            p = self.policy.registry.partners[partner]
            key = partner_key(self.workdir.mask_secret(), p.name)
            self._oracles[partner] = entitled_connection(
                self.federation, self.generated, self.policy.roles[p.role], p, key
            )
        return self._oracles[partner]


@contextlib.asynccontextmanager
async def broker_over(
    running: Running,
    audit: AuditLog,
    endpoints: dict[str, str] | None = None,
    policy: PolicySet | None = None,
    linkage: LinkageModel | None = None,
    ledger: PrivacyLedger | None = None,
    metrics: BrokerMetrics | None = None,
) -> AsyncIterator[tuple[int, Readiness]]:
    """A broker of this test's own, in process, over ``running``'s adapters
    (or, for a source in ``endpoints``, that address) and writing to
    ``audit``; yields its port and its readiness (probed only when a write
    fails). ``policy`` (default: the session's), ``linkage``, ``ledger``
    (privacy budgets; default: in memory) and ``metrics`` are its own when
    given."""
    from accord import tls
    from broker.fanout import AdapterClients
    from broker.pipeline import QueryPipeline
    from broker.server import create_server

    addresses = {**running.launcher.adapter_addresses, **(endpoints or {})}
    federation = running.federation.with_endpoints(addresses)
    pki = running.workdir.pki
    ca, (cert, key) = pki.ca_cert(), pki.broker_client()
    clients = AdapterClients(federation, ca, cert, key)
    pipeline = QueryPipeline(
        federation, clients, policy or running.policy, running.workdir.mask_secret(), ledger=ledger
    )
    server_cert, server_key = pki.broker_server()
    server, port, readiness = await create_server(
        pipeline,
        tls.server_credentials(ca, server_cert, server_key),
        audit=audit,
        readiness_interval_s=30,
        linkage=linkage,
        metrics=metrics,
    )
    try:
        yield port, readiness
    finally:
        await readiness.stop()
        await server.stop(None)
        await clients.close()
        pipeline.close()


#: The session's statistics queries share one partner's budget in one work
#: dir: far more than a year's. The shipped role's per-query epsilon (its
#: noise) stays; tests of the budget itself start brokers of their own over
#: the shipped policy (tests/integration/test_privacy_budget.py).
SESSION_EPSILON_PER_YEAR = "1000000"


def session_policies(target: Path) -> Path:
    """The shipped policies, with the budget of every private role raised
    for the session, and a second partner of the statistics role."""
    shutil.copytree(DEFAULT_POLICIES, target)
    for path in (target / "roles").glob("*.yaml"):
        text = path.read_text()
        path.write_text(
            re.sub(r"(?m)^(\s+epsilon_per_year:).*$", rf"\1 {SESSION_EPSILON_PER_YEAR}", text)
        )
    partners = target / "partners.yaml"
    partners.write_text(
        partners.read_text()
        + "\n  statistics_second:\n    organization: Statistics Canada, second unit\n"
        + "    role: statistics\n    jurisdiction: CA\n"
    )
    return target


def policies_without(target: Path, roles: set[str]) -> Path:
    """The shipped policies without ``roles`` and their partners: for a
    federation of a few sources, where a role reading a table none of them
    serves (the victim role: victim_cases, CA-CSC's) would stop the broker."""
    shutil.copytree(DEFAULT_POLICIES, target)
    for role in roles:
        (target / "roles" / f"{role}.yaml").unlink()
    partners_file = target / "partners.yaml"
    doc = yaml.safe_load(partners_file.read_text())
    doc["partners"] = {n: p for n, p in doc["partners"].items() if p["role"] not in roles}
    partners_file.write_text(yaml.safe_dump(doc, allow_unicode=True))
    held = {
        purpose
        for path in (target / "roles").glob("*.yaml")
        for purpose in yaml.safe_load(path.read_text()).get("purposes", [])
    }
    purposes_file = target / "purposes.yaml"
    doc = yaml.safe_load(purposes_file.read_text())
    doc["purposes"] = {p: text for p, text in doc["purposes"].items() if p in held}
    purposes_file.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return target


def start(workdir: Workdir, federation_path: Path) -> Iterator[Running]:
    policies = session_policies(workdir.path / "session-policies")
    init_certs(workdir, federation_path, policies)
    federation = load_federation(federation_path)
    write_federation_data(federation, workdir.path, seed=SEED, scale=SCALE)
    generated = generate(federation, seed=SEED, scale=SCALE)
    policy = PolicySet.load(policies, federation)
    launcher = LocalFederation(workdir, federation_path, policies)
    with launcher:
        yield Running(workdir, federation, launcher, generated, policy)


@pytest.fixture(scope="session")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The embedded federation: six SQLite-backed systems."""
    yield from start(Workdir(tmp_path_factory.mktemp("accord")), DEFAULT_FEDERATION)


@pytest.fixture(scope="session")
def running_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The example deployment: OMS on PostgreSQL, CORNET on MariaDB (fresh
    databases, dropped afterwards), the other four on SQLite."""
    name = f"accord_it_{uuid.uuid4().hex[:8]}"
    dsns = {
        "ACCORD_OMS_DSN": f"{PG_SERVER}/{name}",
        "ACCORD_CORNET_DSN": f"{MARIADB_SERVER}/{name}",
    }
    require_servers()
    try:
        with environment(dsns):  # the adapter processes inherit them
            yield from start(Workdir(tmp_path_factory.mktemp("accord-servers")), EXAMPLE_FEDERATION)
    finally:
        drop_databases(name)


@pytest.fixture(scope="session")
def crown(running: Running) -> Iterator[BrokerClient]:
    with running.client(
        "crown_attorney", end_user="test-user", purpose="bail_hearing", case_ref="R-2026-0042"
    ) as client:
        yield client


def rows(table: pa.Table) -> list[tuple[Any, ...]]:
    return list(zip(*(c.to_pylist() for c in table.columns), strict=True))
