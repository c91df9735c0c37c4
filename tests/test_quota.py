"""Admission per partner without gRPC: the token bucket and the concurrency
and bytes limits on a fake clock (no sleeps), the quota keys of role and
partner files refused with file:line, and a reload that keeps the counts."""

from __future__ import annotations

import datetime as dt
import shutil
from typing import TYPE_CHECKING

import grpc
import pytest

from accord.errors import OverQuota, grpc_status
from broker.identity import Principal
from broker.policy.store import PolicySet, check_policies
from broker.quota import MB, Admission, Quota, TokenBucket
from tests.conftest import POLICY_FIXTURES, make_small_federation

if TYPE_CHECKING:
    from pathlib import Path

FEDERATION = make_small_federation()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_gives_its_burst_then_one_token_per_interval():
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token every 1/rate seconds
    clock.now += 0.25
    assert bucket.take() == pytest.approx(0.25)  # half a token earned: half the wait
    clock.now += 0.25
    assert bucket.take() == 0.0
    clock.now += 3600  # a long idle time earns no more than the burst
    assert [bucket.take() for _ in range(4)][-1] == pytest.approx(0.5)


def test_a_refusal_names_the_limit_its_value_and_when_to_retry():
    clock = FakeClock()
    admission = Admission(clock)
    quota = Quota(concurrent_queries=100, queries_per_second=4, burst=2)
    admission.admit("p", quota).close()
    admission.admit("p", quota).close()
    with pytest.raises(OverQuota) as caught:
        admission.admit("p", quota)
    refusal = caught.value
    assert refusal.limit == "queries_per_second"
    assert refusal.retry_after_s == pytest.approx(0.25)
    assert "queries_per_second=4" in str(refusal) and "burst 2" in str(refusal)
    assert grpc_status(refusal)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    clock.now += refusal.retry_after_s  # retried when told: admitted
    admission.admit("p", quota).close()


def test_concurrency_is_per_partner_and_a_closed_ticket_frees_its_slot():
    admission = Admission(FakeClock())
    quota = Quota(concurrent_queries=2, queries_per_second=100, burst=100)
    held = [admission.admit("flooder", quota), admission.admit("flooder", quota)]
    with pytest.raises(OverQuota, match="concurrent_queries=2") as caught:
        admission.admit("flooder", quota)
    assert caught.value.limit == "concurrent_queries" and caught.value.retry_after_s > 0
    admission.admit("other", quota).close()  # another partner is not held back
    held[0].close()
    held[0].close()  # a second close frees nothing more
    assert admission.loads["flooder"].queries == 1
    admission.admit("flooder", quota).close()


def test_a_query_refused_for_concurrency_spends_no_token():
    clock = FakeClock()
    admission = Admission(clock)
    quota = Quota(concurrent_queries=1, queries_per_second=1, burst=2)
    first = admission.admit("p", quota)
    for _ in range(5):
        with pytest.raises(OverQuota, match="concurrent_queries"):
            admission.admit("p", quota)
    first.close()
    admission.admit("p", quota).close()  # the burst's second token is still there


def test_bytes_in_flight_bound_the_partners_answers():
    admission = Admission(FakeClock())
    quota = Quota(bytes_in_flight_mb=1)
    first, second = admission.admit("p", quota), admission.admit("p", quota)
    first.hold(3 * MB)  # one answer may always hold one message
    with pytest.raises(OverQuota, match="bytes_in_flight_mb=1") as caught:
        admission.admit("p", quota)  # a new query waits for the bytes to go
    assert caught.value.limit == "bytes_in_flight"
    second.hold(1)
    with pytest.raises(OverQuota, match="bytes_in_flight"):
        second.hold(1)  # an answer already holding bytes may not pile on more
    first.release(3 * MB)
    second.close()
    first.close()
    assert admission.loads["p"].bytes == 0 and admission.loads["p"].queries == 0


def test_a_new_quota_keeps_what_the_partner_has_under_way():
    """A reload hands admission new limits; tickets admitted before it
    release into the same counts (no query lost, none counted twice)."""
    clock = FakeClock()
    admission = Admission(clock)
    old = Quota(concurrent_queries=3, queries_per_second=100, burst=100)
    held = [admission.admit("p", old) for _ in range(3)]
    new = Quota(concurrent_queries=2, queries_per_second=1, burst=1)
    with pytest.raises(OverQuota, match="concurrent_queries=2"):
        admission.admit("p", new)
    for ticket in held:
        ticket.close()
    assert admission.loads["p"].queries == 0
    admission.admit("p", new).close()
    with pytest.raises(OverQuota, match="queries_per_second=1"):
        admission.admit("p", new)  # the new, smaller burst is in force


# --- quota keys in the policy files ------------------------------------------


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICY_FIXTURES, target)
    return target


def add_after(path: Path, anchor: str, text: str) -> None:
    content = path.read_text()
    assert anchor in content
    path.write_text(content.replace(anchor, anchor + text, 1))


def principal(policy: PolicySet, name: str) -> Principal:
    return Principal(policy.registry.partners[name], "", 0, dt.datetime.now(dt.UTC))


def test_a_role_says_its_quota_a_partner_may_override_it(policy_dir):
    roles = policy_dir / "roles" / "clerk.yaml"
    add_after(roles, "case_reference_required: true\n", "quota:\n  concurrent_queries: 3\n")
    add_after(
        policy_dir / "partners.yaml",
        "    role: officer\n",
        "    quota: {queries_per_second: 0.5, burst: 1}\n",
    )
    policy = PolicySet.load(policy_dir, FEDERATION)
    assert policy.quota_for(principal(policy, "clerk")) == Quota(concurrent_queries=3)
    officer = policy.quota_for(principal(policy, "officer_bc"))
    assert (officer.queries_per_second, officer.burst) == (0.5, 1)
    assert policy.quota_for(principal(policy, "analyst")) == Quota()  # the role says nothing


@pytest.mark.parametrize(
    ("quota", "message"),
    [
        ("  concurrent_queries: 0\n", "clerk.yaml:5: quota concurrent_queries must be a positive"),
        ("  burst: 2.5\n", "clerk.yaml:5: quota burst must be a positive integer"),
        ("  queries_per_second: -1\n", "clerk.yaml:5: quota queries_per_second must be a positive"),
        ("  queries_per_second: .nan\n", "clerk.yaml:5: quota queries_per_second must be"),
        ("  bytes_in_flight_mb: lots\n", "clerk.yaml:5: quota bytes_in_flight_mb must be"),
        ("  concurrent_queries: true\n", "clerk.yaml:5: quota concurrent_queries must be"),
        ("  burst: 4\n  speed: 9\n", "clerk.yaml:6: unknown quota key 'speed'"),
    ],
)
def test_bad_quota_values_in_a_role_are_refused_with_file_and_line(policy_dir, quota, message):
    add_after(
        policy_dir / "roles" / "clerk.yaml", "case_reference_required: true\n", "quota:\n" + quota
    )
    policy, problems = check_policies(policy_dir, FEDERATION)
    assert policy is None
    assert any(message in p for p in problems), problems


def test_a_quota_that_is_not_a_mapping_is_refused(policy_dir):
    add_after(policy_dir / "roles" / "clerk.yaml", "case_reference_required: true\n", "quota: 5\n")
    _, problems = check_policies(policy_dir, FEDERATION)
    assert any("clerk.yaml:4: 'quota' must be a mapping" in p for p in problems), problems


def test_bad_quota_values_of_a_partner_are_refused_with_file_and_line(policy_dir):
    add_after(
        policy_dir / "partners.yaml",
        "    role: clerk\n",
        "    quota:\n      burst: 3\n      concurrent_queries: -2\n",
    )
    policy, problems = check_policies(policy_dir, FEDERATION)
    assert policy is None
    expected = "partners.yaml:17: quota concurrent_queries must be a positive integer"
    assert any(expected in p for p in problems), problems
