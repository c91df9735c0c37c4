"""The privacy budget of the statistics role over real gRPC and mTLS
(``broker.budget``, ``broker.policy.privacy``): each test runs a broker of
its own, in process, over the session's adapters, with the *shipped*
privacy settings (the session raises the yearly budget for the other tests)
and a ledger file of its own.

The averaging attack (many distinct differencing pairs) is refused once the
year's epsilon is spent; a repeat costs nothing; a restart keeps what was
spent; two partners of the role have separate budgets; the audit and the
metrics say what was charged; Explain shows the cost and charges nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord.audit.keys import load_or_create_signing_key
from accord.audit.log import AuditLog
from accord.client import BrokerClient, RetryLater
from accord.workdir import DEFAULT_POLICIES
from broker.budget import PrivacyLedger
from broker.metrics import BrokerMetrics
from broker.policy.store import PolicySet
from tests.integration.conftest import broker_over, rows

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration


def shipped_policy(running: Running, tmp_path: Path) -> PolicySet:
    """The session's policies (its partners and certificates) with the
    statistics role as shipped."""
    target = tmp_path / "policies"
    shutil.copytree(running.launcher.policies_dir, target)
    shutil.copy(DEFAULT_POLICIES / "roles" / "statistics.yaml", target / "roles")
    return PolicySet.load(target, running.federation)


class Broker:
    """One in-process broker on its own thread's event loop."""

    def __init__(
        self, running: Running, policy: PolicySet, ledger: Path, audit: AuditLog, metrics: Any
    ) -> None:
        self.running, self.policy, self.ledger_path = running, policy, ledger
        self.audit, self.metrics = audit, metrics

    @contextlib.contextmanager
    def serving(self) -> Iterator[Callable[[str], BrokerClient]]:
        loop = asyncio.new_event_loop()
        ledger = PrivacyLedger(self.ledger_path)
        manager = broker_over(
            self.running, self.audit, policy=self.policy, ledger=ledger, metrics=self.metrics
        )
        port, _ = loop.run_until_complete(manager.__aenter__())

        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        opened: list[BrokerClient] = []

        def client(partner: str) -> BrokerClient:
            ca, cert, key = self.running.workdir.partner_credentials(partner)
            c = BrokerClient(f"localhost:{port}", ca, cert, key, purpose="annual_statistics")
            opened.append(c)
            return c

        try:
            yield client
        finally:
            for c in opened:
                c.close()
            asyncio.run_coroutine_threadsafe(manager.__aexit__(None, None, None), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            loop.close()
            ledger.close()


@pytest.fixture
def broker(running: Running, tmp_path: Path) -> Broker:
    audit = AuditLog(tmp_path / "audit", load_or_create_signing_key(tmp_path / "audit.key"))
    return Broker(
        running,
        shipped_policy(running, tmp_path),
        tmp_path / "privacy" / "ledger.sqlite3",
        audit,
        BrokerMetrics(),
    )


def per_year(broker: Broker) -> int:
    privacy = broker.policy.roles["statistics"].privacy
    assert privacy is not None
    return round(privacy.epsilon_per_year / privacy.epsilon_per_query)


def records(tmp_path: Path, query_id: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted((tmp_path / "audit").glob("audit-*.jsonl"))
        for line in path.read_text().splitlines()
        if query_id in line
    ]


def test_the_averaging_attack_is_refused_at_the_budget(running, broker, tmp_path):
    """Distinct differencing pairs around one withheld cell (each pair's broad
    cell phrased anew, so each is a fresh draw): the broker answers a year's
    budget of them, E / epsilon_per_query queries, then RESOURCE_EXHAUSTED
    with a RetryInfo and the date the budget renews, for the attack's next
    query and for a repeat alike (the reservation comes first)."""
    answered: list[int] = []
    with broker.serving() as client, pytest.raises(RetryLater) as refused:
        statistics = client("statistics")
        for i in range(per_year(broker)):  # pairs: twice what the budget answers
            broad = (
                "SELECT count(*) FROM offenders "
                f"WHERE (security_level <> 'X{i}' OR security_level IS NULL)"
            )
            for sql in (broad, f"{broad} AND NOT (gender = 'F' AND status = 'UAL')"):
                answered.append(len(rows(statistics.query(sql).table)))
    assert answered == [1] * per_year(broker)  # each answer one released cell
    error = refused.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "privacy budget" in error.details() and "renews on" in error.details()
    assert error.retry_after_s > 0


def test_a_repeat_costs_nothing_and_a_restart_keeps_the_spent_budget(broker, tmp_path):
    sql = "SELECT status, count(*) FROM offenders GROUP BY status"
    with broker.serving() as client:
        statistics = client("statistics")
        first = statistics.query(sql)
        again = [statistics.query(sql) for _ in range(per_year(broker) + 5)]
        assert all(
            sorted(rows(a.table), key=repr) == sorted(rows(first.table), key=repr) for a in again
        )
        (end,) = [r for r in records(tmp_path, first.query_id) if r["event"] == "query_end"]
        assert end["privacy"]["epsilon_charged"] == 0.5
        assert end["privacy"]["epsilon_remaining"] == 9.5
        (repeat,) = [r for r in records(tmp_path, again[-1].query_id) if r["event"] == "query_end"]
        assert repeat["privacy"]["epsilon_charged"] == 0
        assert repeat["privacy"]["epsilon_spent"] == 0.5
        for i in range(per_year(broker) - 1):
            statistics.query(f"SELECT count(*) FROM offenders WHERE gender <> 'X{i}'")
        spent = broker.metrics.registry.get_sample_value(
            "accord_privacy_epsilon_spent", {"role": "statistics", "partner": "statistics"}
        )
        assert spent == 10
    with broker.serving() as client:  # a new broker over the same ledger file
        statistics = client("statistics")
        with pytest.raises(RetryLater) as refused:
            statistics.query("SELECT gender, count(*) FROM offenders GROUP BY gender")
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(RetryLater):
            statistics.query(sql)  # refused before anyone can tell it is a repeat


def test_two_partners_of_the_role_have_separate_budgets(broker):
    with broker.serving() as client:
        first, second = client("statistics"), client("statistics_second")
        for i in range(per_year(broker)):
            first.query(f"SELECT count(*) FROM offenders WHERE gender <> 'X{i}'")
        with pytest.raises(RetryLater):
            first.query("SELECT count(*) FROM offenders WHERE gender <> 'last'")
        answer = second.query("SELECT count(*) FROM offenders WHERE gender <> 'X0'")
        assert len(rows(answer.table)) == 1


def test_explain_shows_the_cost_and_charges_nothing(broker):
    sql = "SELECT status, count(*) FROM offenders GROUP BY status"
    with broker.serving() as client:
        statistics = client("statistics")
        for _ in range(3):
            plan = statistics.explain(sql)
            assert plan.privacy_epsilon == 0.5 and plan.privacy_epsilon_remaining == 10
        statistics.query(sql)
        assert statistics.explain(sql).privacy_epsilon_remaining == 9.5
