"""Fuzz: any text a partner can send, through parse, validate, policy
rewrite and plan (``broker.prepare.prepare_query``) in process, for several
roles, among them the aggregate-only one. Every input either prepares or
raises an ``AccordError`` whose gRPC status is neither INTERNAL nor UNKNOWN;
never another exception. (The merge and the adapters are fuzzed against a
running federation: ``tests/integration/test_fuzz_live.py``.)

Bounded for CI (derandomized, the same inputs every run); a longer hunt:

    ACCORD_FUZZ_EXAMPLES=20000 make fuzz

Every input that ever failed is in ``tests/fixtures/fuzz/corpus.jsonl``,
replayed by ``test_the_corpus_prepares_or_is_refused``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accord.catalog import SOURCE_COLUMN
from accord.errors import AccordError, grpc_status
from broker.policy.rewrite import RoleView
from broker.prepare import prepare_query
from tests import inprocess, sqlfuzz
from tests.test_policy_engine import FUZZ_BASES

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.fuzz

#: Examples per test; ACCORD_FUZZ_EXAMPLES raises it for a longer hunt, and
#: ACCORD_FUZZ_RANDOM=1 draws new inputs instead of CI's fixed ones.
EXAMPLES = int(os.environ.get("ACCORD_FUZZ_EXAMPLES", "100"))
DERANDOMIZE = not os.environ.get("ACCORD_FUZZ_RANDOM")

#: Partners whose roles differ in kind: wide (police), case-bound (crown),
#: a principal-attribute row filter (residential facility), a linked-person
#: filter (victim), a list attribute (contract agency), aggregate-only.
PARTNERS = [
    "police",
    "crown_attorney",
    "residential_facility",
    "victim",
    "contract_agency",
    "statistics",
]
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def role_catalog(partner: str) -> sqlfuzz.Catalog:
    """The tables and columns ``partner``'s role may see (GetCatalog's answer)."""
    view = RoleView(inprocess.role_of(partner), inprocess.principal(partner), inprocess.FEDERATION)
    return {t: [c for c in columns if c != SOURCE_COLUMN] for t, columns in view.schema().items()}


CATALOGS = {p: role_catalog(p) for p in PARTNERS}


def as_partner(sql: Callable[[sqlfuzz.Catalog], st.SearchStrategy[str]]) -> st.SearchStrategy:
    """(partner, text): the text drawn mostly over that partner's catalog."""
    return st.sampled_from(PARTNERS).flatmap(lambda p: st.tuples(st.just(p), sql(CATALOGS[p])))


STATISTICS = inprocess.role_of("statistics")
DIMENSIONS = {t: sorted(g.dimensions) for t, g in STATISTICS.tables.items()}

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(sql: str, partner: str, fields: dict[str, object] | None = None) -> str:
    """Prepares ``sql`` as ``partner``; the outcome's name.

    Raises AssertionError for an AccordError that maps to INTERNAL/UNKNOWN;
    any other exception propagates and fails the test.
    """
    role = inprocess.role_of(partner)
    fields = fields or {"purpose": sorted(role.purposes)[0], "case_ref": "CASE-1"}
    try:
        prepare_query(
            sql,
            inprocess.principal(partner),
            role,
            inprocess.FEDERATION,
            purpose=str(fields["purpose"]),
            case_ref=str(fields["case_ref"]),
        )
    except AccordError as exc:
        code, message = grpc_status(exc)
        assert code not in NEVER, (code, message, sql)
        assert message, sql
        return type(exc).__name__
    return "prepared"


@FUZZ
@given(as_partner(sqlfuzz.grammar_sql))
def test_grammar_sql_prepares_or_is_refused(partner_sql):
    partner, sql = partner_sql
    event(outcome(sql, partner))


@FUZZ
@given(as_partner(lambda catalog: sqlfuzz.mutated_sql(FUZZ_BASES, catalog)))
def test_mutated_sql_prepares_or_is_refused(partner_sql):
    partner, sql = partner_sql
    event(outcome(sql, partner))


@FUZZ
@given(st.sampled_from(PARTNERS), sqlfuzz.random_text())
def test_random_text_is_refused(partner, sql):
    event(outcome(sql, partner))


@FUZZ
@given(sqlfuzz.aggregate_sql(DIMENSIONS))
def test_aggregate_shapes_prepare_or_are_refused(sql):
    event(outcome(sql, "statistics"))


@FUZZ
@given(
    st.sampled_from(PARTNERS).flatmap(
        lambda p: st.tuples(
            st.just(p), sqlfuzz.request_fields(sorted(inprocess.role_of(p).purposes))
        )
    ),
    sqlfuzz.grammar_sql(),
)
def test_request_fields_are_admitted_or_refused(partner_fields, sql):
    partner, fields = partner_fields
    event(outcome(sql, partner, fields))


@pytest.mark.parametrize(
    "entry",
    sqlfuzz.load_corpus("prepare"),
    ids=lambda e: e.get("title", e["sql"][:40]),
)
def test_the_corpus_prepares_or_is_refused(entry):
    outcome(sqlfuzz.corpus_text(entry), entry["partner"])
