"""Differential privacy for aggregate-only roles (``broker.policy.privacy``)
and the privacy budget (``broker.budget``), without gRPC: the averaging
attack cut off by the budget, repeats free, restarts, concurrency, one
budget per partner, the role file's settings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import statistics
import threading
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import OverQuota, PolicyDenied
from broker.budget import PrivacyLedger, renewal
from broker.policy.disclosure import Output, ReleaseSpec, release_key
from broker.policy.masks import partner_key
from broker.policy.model import Privacy
from broker.policy.privacy import averaging_bound, query_identity, release_private, scales
from broker.policy.store import check_policies
from broker.prepare import prepare_query
from tests import inprocess
from tests.conftest import POLICY_FIXTURES

if TYPE_CHECKING:
    from pathlib import Path

    from broker.policy.model import Role

PRIVACY = Privacy(epsilon_per_query=0.5, epsilon_per_year=10.0, rows_per_person={"t": 3})
#: A count per group, as the planner's hidden columns give it (see test_disclosure).
SPEC = ReleaseSpec(
    (Output("dimension"), Output("count", 5, sensitivity=3, slots=("COUNT(*)",))), 5, 5, (2,), (3,)
)
KEY = release_key(b"test secret", "statistics")


def merged(counts: list[int], groups: list[str] | None = None) -> pa.Table:
    """A merged answer of one count per group, every group over the threshold."""
    return pa.table(
        {
            "g": pa.array(groups or [f"g{i}" for i in range(len(counts))]),
            "n": pa.array(counts, pa.int64()),
            "__accord_persons_1": pa.array([max(n, 5) for n in counts], pa.int64()),
            "__accord_cell_1": pa.array(range(len(counts)), pa.uint64()),
        }
    )


def ask(
    ledger: PrivacyLedger, table: pa.Table, query: str, partner: str = "statistics"
) -> tuple[list[Any], float]:
    """One answer of ``query`` to ``partner``: (released counts, epsilon charged)."""
    reservation = ledger.reserve(partner, PRIVACY.epsilon_per_query, PRIVACY.epsilon_per_year)
    try:
        answer, _, charge = release_private(
            table, SPEC, KEY, PRIVACY, ledger, reservation, "statistics", query
        )
    finally:
        ledger.release(reservation)
    return answer.column("n").to_pylist(), charge.charged


# --- the averaging attack -----------------------------------------------------------------


def test_the_averaging_attack_is_cut_off_by_the_budget():
    """The attack bench/disclosure_error.py measured (100 distinct pairs
    recovered a withheld count 9 times in 10): the attacker asks distinct
    pairs (a broad cell A_i, and A_i without the withheld cell of c persons)
    until the broker refuses, then averages the differences. The budget
    answers E / epsilon_per_query queries, no more, and at that point the
    estimate's error is no smaller than the documented bound
    (``averaging_bound``: the least standard deviation of any unbiased
    estimate), measured over many attackers."""
    rng = random.Random(19)
    answered, errors, hits = [], [], 0
    for trial in range(150):
        ledger = PrivacyLedger()
        secret = c = rng.randrange(1, 5)
        differences: list[int] = []
        pair = 0
        while True:
            broad = rng.randrange(100, 10_000)
            try:
                (a,), _ = ask(ledger, merged([broad]), f"trial {trial} broad {pair}")
                (b,), _ = ask(ledger, merged([broad - secret]), f"trial {trial} rest {pair}")
            except OverQuota as refused:
                assert refused.limit == "privacy_budget"
                break
            differences.append(a - b)
            pair += 1
        answered.append(len(differences))
        estimate = statistics.fmean(differences)
        errors.append(estimate - c)
        hits += round(estimate) == c
        assert ledger.spent("statistics") <= PRIVACY.epsilon_per_year + 1e-9
    # every attacker got exactly the budget's worth of answers
    assert set(answered) == {int(PRIVACY.epsilon_per_year / PRIVACY.epsilon_per_query) // 2}
    rms = statistics.fmean(e * e for e in errors) ** 0.5
    bound = averaging_bound(PRIVACY, rows=3)
    assert rms >= bound, (rms, bound)
    # and the withheld count comes out about as often as a blind guess among
    # 1..4 (25%), not 9 times in 10
    assert hits / len(errors) < 0.45, hits


def test_noise_is_calibrated_by_opendp_to_the_query_epsilon():
    """A count of sensitivity 3 at epsilon 0.5: scale 6; an average adds a
    second statistic, so each of two gets half the epsilon."""
    assert scales(SPEC, PRIVACY) == [pytest.approx(6.0)]
    avg = ReleaseSpec(
        (
            Output("dimension"),
            Output(
                "avg",
                365,
                (4, 5),
                sensitivity=3 * 100,
                count_sensitivity=3,
                slots=("SUM(x)", "COUNT(x)"),
            ),
        ),
        5,
        5,
        (2,),
        (3,),
    )
    assert scales(avg, PRIVACY) == [pytest.approx(1200.0), pytest.approx(12.0)]


# --- the same cell --------------------------------------------------------------------------


def test_a_repeat_gives_the_same_answer_and_costs_nothing():
    ledger = PrivacyLedger()
    table = merged([120, 340, 57])
    first, charged = ask(ledger, table, "q")
    assert charged == PRIVACY.epsilon_per_query
    for _ in range(5):
        assert ask(ledger, table, "q") == (first, 0.0)
    assert ledger.spent("statistics") == PRIVACY.epsilon_per_query


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12, unique=True))
def test_cells_released_whole_or_one_by_one_agree(counts):
    """Computed two ways: a grouped answer, and each of its groups asked
    alone by the same query later, give the same values, for nothing."""
    ledger = PrivacyLedger()
    table = merged(counts)
    whole, _ = ask(ledger, table, "q")
    for i in range(table.num_rows):
        assert ask(ledger, table.slice(i, 1), "q") == ([whole[i]], 0.0)


def test_a_rephrased_query_is_a_fresh_draw_and_is_paid_for():
    """A cell is identified by the query, not by its persons: identified by
    its persons, a differencing pair would answer alike exactly when the
    cell between them is empty."""
    ledger = PrivacyLedger()
    table = merged([1000] * 40)
    first, _ = ask(ledger, table, "SELECT g, count(*) ...")
    other, charged = ask(ledger, table, "SELECT g, count(*) AS n ...")
    assert charged == PRIVACY.epsilon_per_query
    assert first != other  # 40 cells of noise of scale 6: never all alike


def test_released_values_are_multiples_of_the_base_and_never_negative():
    ledger = PrivacyLedger()
    released, _ = ask(ledger, merged([0, 1, 2, 5, 1000] * 20), "q")
    assert all(v % 5 == 0 and v >= 0 for v in released)


# --- the budget -----------------------------------------------------------------------------


def test_an_exhausted_budget_says_when_it_renews():
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    ledger = PrivacyLedger(clock=lambda: now)
    for i in range(20):
        ask(ledger, merged([100]), f"q{i}")
    with pytest.raises(OverQuota) as refused:
        ask(ledger, merged([100]), "one more")
    assert refused.value.limit == "privacy_budget"
    assert "renews on 2027-01-01" in str(refused.value)
    assert refused.value.retry_after_s == (renewal(2026) - now).total_seconds()
    # a repeat is refused too: the reservation comes before anyone knows it is one
    with pytest.raises(OverQuota):
        ask(ledger, merged([100]), "q0")
    assert ledger.remaining("statistics", PRIVACY.epsilon_per_year) == 0


def test_the_budget_renews_with_the_year():
    clock = [dt.datetime(2026, 12, 31, 23, tzinfo=dt.UTC)]
    ledger = PrivacyLedger(clock=lambda: clock[0])
    for i in range(20):
        ask(ledger, merged([100]), f"q{i}")
    with pytest.raises(OverQuota):
        ask(ledger, merged([100]), "late")
    clock[0] = dt.datetime(2027, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    assert ask(ledger, merged([100]), "late")[1] == PRIVACY.epsilon_per_query
    assert ledger.spent("statistics", 2026) == PRIVACY.epsilon_per_year


def test_a_restart_keeps_the_spent_budget_and_the_draws(tmp_path: Path):
    path = tmp_path / "privacy" / "ledger.sqlite3"
    ledger = PrivacyLedger(path)
    table = merged([120, 340, 57])
    first, _ = ask(ledger, table, "q")
    for i in range(10):
        ask(ledger, merged([100]), f"other {i}")
    spent = ledger.spent("statistics")
    ledger.close()
    reopened = PrivacyLedger(path)
    assert reopened.spent("statistics") == spent == 11 * PRIVACY.epsilon_per_query
    assert ask(reopened, table, "q") == (first, 0.0)  # the same draw, still free
    for i in range(9):
        ask(reopened, merged([100]), f"more {i}")
    with pytest.raises(OverQuota):
        ask(reopened, merged([100]), "past the budget")


def test_concurrent_queries_cannot_overspend():
    """64 threads each ask a distinct query at once, for a budget of 20:
    exactly 20 are answered and charged, the rest refused."""
    ledger = PrivacyLedger()
    start = threading.Barrier(64)
    outcomes: list[str] = []

    def one(i: int) -> None:
        start.wait()
        try:
            ask(ledger, merged([100 + i]), f"q{i}")
            outcomes.append("answered")
        except OverQuota:
            outcomes.append("refused")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count("answered") == 20 and outcomes.count("refused") == 44
    assert ledger.spent("statistics") == pytest.approx(PRIVACY.epsilon_per_year)


def test_a_query_that_fails_gives_its_reservation_back():
    ledger = PrivacyLedger()
    for _ in range(100):
        reservation = ledger.reserve("statistics", 0.5, 10.0)
        ledger.release(reservation)
    assert ledger.spent("statistics") == 0
    ask(ledger, merged([100]), "q")  # still room


def test_partners_of_one_role_have_separate_budgets_and_the_same_numbers():
    """One partner spending its year leaves the other's whole; a cell the
    first was given is the same number for the second (the draws are the
    role's: two partners together learn nothing more from a repeat), who
    pays for it once."""
    ledger = PrivacyLedger()
    table = merged([120, 340, 57])
    first, _ = ask(ledger, table, "q", partner="statistics")
    for i in range(19):
        ask(ledger, merged([100]), f"q{i}", partner="statistics")
    with pytest.raises(OverQuota):
        ask(ledger, merged([100]), "more", partner="statistics")
    assert ask(ledger, table, "q", partner="statistics_on") == (first, 0.5)
    assert ask(ledger, table, "q", partner="statistics_on") == (first, 0.0)
    assert ledger.spent("statistics_on") == 0.5


# --- through the policy: bounded contributions, clamps, no joins ---------------------------


def private(role: Role, rows: dict[str, int], clamp: int = 3650) -> Role:
    tables = {
        name: dataclasses.replace(g, clamps=dict.fromkeys(g.measures, clamp))
        for name, g in role.tables.items()
    }
    return dataclasses.replace(role, tables=tables, privacy=Privacy(0.5, 10.0, rows))


def merged_truth(sql: str, role: Role) -> pa.Table:
    prepared = prepare_query(
        sql,
        inprocess.principal("statistics"),
        role,
        inprocess.FEDERATION,
        purpose="annual_statistics",
        case_ref="",
    )
    tables = {ref.ref_id: inprocess._scanned(ref) for ref in prepared.plan.references}
    table, _ = inprocess.MERGER.run(prepared.plan, tables, partner_key(inprocess.SECRET, "x"))
    return table


def test_one_person_adds_at_most_rows_per_person_rows():
    """With one row a person, every group's count is its count of persons;
    without the bound, the same data has persons with several sentences."""
    role = inprocess.role_of("statistics")
    sql = "SELECT sentence_type, count(*) FROM sentences GROUP BY sentence_type"
    bounded = merged_truth(sql, private(role, {"offenders": 1, "sentences": 1}))
    counts = bounded.column(1).to_pylist()
    assert counts == bounded.column("__accord_persons_1").to_pylist()
    loose = merged_truth(sql, role)
    assert any(
        n > p
        for n, p in zip(
            loose.column(1).to_pylist(), loose.column("__accord_persons_1").to_pylist(), strict=True
        )
    ), "the small data has nobody with two sentences: the test shows nothing"
    # the same rows each time: the truth is stable, so a repeat is one cell
    again = merged_truth(sql, private(role, {"offenders": 1, "sentences": 1}))
    assert sorted(again.column(1).to_pylist()) == sorted(counts)


def test_measures_are_clamped_before_they_are_summed():
    role = private(inprocess.role_of("statistics"), {"offenders": 3, "sentences": 8}, clamp=10)
    table = merged_truth(
        "SELECT sentence_type, sum(length_days), count(length_days) FROM sentences "
        "GROUP BY sentence_type",
        role,
    )
    for total, count in zip(table.column(1).to_pylist(), table.column(2).to_pylist(), strict=True):
        assert total is None or 0 <= total <= 10 * count


def test_a_private_role_reads_one_table_per_query():
    role = private(inprocess.role_of("statistics"), {"offenders": 3, "sentences": 8})
    with pytest.raises(PolicyDenied, match="one table per query"):
        merged_truth(
            "SELECT o.gender, count(*) FROM offenders o JOIN sentences s "
            "ON o.birth_date = s.sentence_date GROUP BY o.gender",
            role,
        )


def test_the_query_identity_is_the_rewritten_sql():
    assert query_identity("SELECT 1") == query_identity("SELECT 1")
    assert query_identity("SELECT 1") != query_identity("SELECT 2")


# --- the role file --------------------------------------------------------------------------


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "policies"
    shutil.copytree(POLICY_FIXTURES, target)
    return target


GOOD = "privacy: {epsilon_per_query: 0.5, epsilon_per_year: 10, rows_per_person: {offenders: 2}}\n"


@pytest.mark.parametrize(
    ("privacy", "problem"),
    [
        (GOOD.replace("0.5", "0"), "epsilon_per_query must be a positive number"),
        (GOOD.replace("10", "0.1"), "exceeds epsilon_per_year"),
        (GOOD.replace("{offenders: 2}", "{}"), "rows_per_person.offenders"),
        (GOOD.replace("offenders: 2", "offenders: 2, sentences: 3"), "not granted"),
        (GOOD.replace("rows_per_person", "rows"), "unknown key 'rows'"),
    ],
)
def test_privacy_settings_are_checked(policy_dir, privacy, problem):
    path = policy_dir / "roles" / "analyst.yaml"
    path.write_text(path.read_text() + privacy)
    policy, problems = check_policies(policy_dir, inprocess.FEDERATION)
    assert policy is None
    assert any(problem in p and "analyst.yaml:" in p for p in problems), problems


def test_good_privacy_settings_load(policy_dir):
    path = policy_dir / "roles" / "analyst.yaml"
    path.write_text(path.read_text() + GOOD)
    policy, problems = check_policies(policy_dir, inprocess.FEDERATION)
    assert policy is not None, problems
    assert policy.roles["analyst"].privacy == Privacy(0.5, 10.0, {"offenders": 2})


def test_privacy_needs_an_aggregate_only_role(policy_dir):
    path = policy_dir / "roles" / "clerk.yaml"
    path.write_text(path.read_text() + GOOD)
    policy, problems = check_policies(policy_dir, inprocess.FEDERATION)
    assert policy is None
    assert any("only applies to aggregate_only roles" in p for p in problems), problems


def test_an_average_is_the_released_sum_over_the_released_count_of_the_same_query():
    """Computed two ways: AVG, and SUM over COUNT of the same column asked in
    the same query, agree: one statistic behind both, one draw, so asking
    the average too costs no extra epsilon."""
    role = private(inprocess.role_of("statistics"), {"offenders": 3, "sentences": 8})
    assert role.privacy is not None
    sql = (
        "SELECT sentence_type, count(length_days), sum(length_days), avg(length_days) "
        "FROM sentences GROUP BY sentence_type"
    )
    prepared = prepare_query(
        sql,
        inprocess.principal("statistics"),
        role,
        inprocess.FEDERATION,
        purpose="annual_statistics",
        case_ref="",
    )
    assert prepared.release is not None
    assert len(scales(prepared.release, role.privacy)) == 2  # the COUNT and the SUM
    table = merged_truth(sql, role)
    ledger = PrivacyLedger()
    reservation = ledger.reserve("statistics", 0.5, 10.0)
    answer, _, _ = release_private(
        table, prepared.release, KEY, role.privacy, ledger, reservation, "statistics", "q"
    )
    assert answer.num_rows > 0
    for _, count, total, mean in (tuple(r.values()) for r in answer.to_pylist()):
        assert mean == (None if total is None or not count else total / count)


def test_two_brokers_over_one_ledger_file_cannot_overspend(tmp_path: Path):
    """Reservations are one process's; the commit checks the bound again in
    its transaction, so two brokers sharing a work dir spend one budget."""
    path = tmp_path / "ledger.sqlite3"
    first, second = PrivacyLedger(path), PrivacyLedger(path)
    answered = 0
    for i in range(30):
        for ledger in (first, second):
            try:
                ask(ledger, merged([100]), f"q{i} {id(ledger)}")
                answered += 1
            except OverQuota:
                pass
    assert answered == 20
    assert first.spent("statistics") == second.spent("statistics") == PRIVACY.epsilon_per_year
