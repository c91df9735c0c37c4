"""Attacker tests: every partner tries to read what its role may not see.

Each attack must end in one of two ways:

* a refusal (PERMISSION_DENIED or INVALID_ARGUMENT) whose message names the
  rule and carries no data value the partner is not entitled to; or
* an answer identical to the same SQL run on the partner's entitled view
  (``running.oracle(partner)``, computed independently from the generated
  data), so no row or value outside that view can surface.

The first run of this suite found eight leaks (CAST errors and error
existence oracles over rows a row filter hides, trailer row counts, a raw
value in Explain, four ways round small-group suppression) and four bugs;
each test that found one now guards its fix.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord.errors import without_query_id
from broker.policy.masks import partner_key
from tests.disclosure_bounds import tolerance
from tests.integration.conftest import rows

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Iterator, Sequence

    from _pytest.mark.structures import ParameterSet

    from accord.client import BrokerClient, QueryResult
    from accord.federation import Federation
    from broker.policy.model import Role
    from broker.policy.store import PolicySet
    from tests.integration.conftest import Running

#: A result's or the oracle's rows
Rows = list[tuple[Any, ...]]

pytestmark = pytest.mark.integration

REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
CASE_REF = "R-2026-0042"

#: One partner per role, named after it, with a purpose its role file holds.
PURPOSE = {
    "police": "investigation",
    "provincial_corrections": "sentence_management",
    "parole_board_provincial": "parole_assessment",
    "crown_attorney": "bail_hearing",
    "residential_facility": "supervision_reports",
    "contract_agency": "reintegration_programs",
    "flagging_coordinator": "high_risk_flagging",
    "passport_canada": "passport_decisions",
    "border_services": "border_interception",
    "immigration": "immigration_proceedings",
    "statistics": "annual_statistics",
    "revenue_federal": "tax_administration",
    "revenue_quebec": "tax_administration",
    "sex_offender_registry_on": "registration",
    "sex_offender_registry_national": "registration",
    "conviction_review": "miscarriage_of_justice_review",
    "victim": "victim_notification",
    "parole_board_federal": "record_suspension",
    "operator": "service_operations",
}
#: Roles whose rows are limited by a row filter (the row-filter escapes).
FILTERED = [
    "police",
    "passport_canada",
    "residential_facility",
    "contract_agency",
    "victim",
    "conviction_review",
    "flagging_coordinator",
    "border_services",
    "immigration",
    "revenue_quebec",
    "sex_offender_registry_on",
]
ROW_PARTNERS = [p for p in PURPOSE if p not in ("statistics", "operator")]
TABLES = ["offenders", "aliases", "sentences", "releases", "incidents", "alerts", "health_notes"]

#: Columns whose values identify a person or their file: none may appear in
#: an error unless the partner may see it (or the caller typed it).
IDENTIFYING = {
    "source_person_id",
    "fps_number",
    "surname",
    "given_names",
    "birth_place",
    "address",
    "photo_ref",
    "alias_surname",
    "alias_given_names",
    "parole_officer",
    "parole_office_phone",
    "conditions",
    "summary",
    "notes",
    "note",
    "birth_date",
    "assigned_facility",
}


# --------------------------------------------------------------------------- helpers


class Attacker:
    """One session per partner (mTLS identity, purpose, case reference)."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self._clients: dict[str, BrokerClient] = {}

    def client(self, partner: str) -> BrokerClient:
        if partner not in self._clients:
            self._clients[partner] = self.running.client(
                partner,
                end_user="attacker-1",
                purpose=PURPOSE[partner],
                case_ref=CASE_REF if partner == "crown_attorney" else "",
            )
        return self._clients[partner]

    def ask(self, partner: str, sql: str) -> tuple[QueryResult, None] | tuple[None, grpc.RpcError]:
        """(result, None) or (None, RpcError)."""
        try:
            return self.client(partner).query(sql), None
        except grpc.RpcError as error:
            return None, error

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


@pytest.fixture(scope="module")
def attacker(running: Running) -> Iterator[Attacker]:
    a = Attacker(running)
    yield a
    a.close()


def _norm(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else round(float(value), 9)
    if isinstance(value, float):
        return round(value, 9)
    if isinstance(value, dict):
        return tuple(sorted((k, _norm(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value


def normalized(table_rows: Iterable[Sequence[object]]) -> list[tuple[object, ...]]:
    return [tuple(_norm(v) for v in row) for row in table_rows]


def same_rows(
    got: Iterable[Sequence[object]], expected: Iterable[Sequence[object]], ordered: bool
) -> bool:
    mine, theirs = normalized(got), normalized(expected)
    if ordered:
        return mine == theirs
    return Counter(map(repr, mine)) == Counter(map(repr, theirs))


_IDENTIFYING_VALUES: list[frozenset[str]] = []


def _all_identifying_values(running: Running) -> frozenset[str]:
    if _IDENTIFYING_VALUES:
        return _IDENTIFYING_VALUES[0]
    values: set[str] = set()
    for tables in running.generated.values():
        for table in tables.values():
            for name in table.column_names:
                if name not in IDENTIFYING:
                    continue
                for v in table.column(name).to_pylist():
                    if v is not None and len(str(v)) >= 4:
                        values.add(str(v))
    _IDENTIFYING_VALUES.append(frozenset(values))
    return _IDENTIFYING_VALUES[0]


_VISIBLE: dict[str, frozenset[str]] = {}


def visible_values(running: Running, partner: str) -> frozenset[str]:
    """Every value (as text) of every column of the partner's entitled view."""
    if partner not in _VISIBLE:
        con = running.oracle(partner)
        found: set[str] = set()
        names = [
            r[0]
            for r in con.sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        ]
        for table in names:
            for row in con.sql(f"SELECT * FROM main.{table}").fetchall():
                found.update(str(v) for v in row if v is not None)
        _VISIBLE[partner] = frozenset(found)
    return _VISIBLE[partner]


_PUNCTUATION = "'\"()[]{},.;:!?"


def _candidates(message: str, longest: int = 10) -> set[str]:
    """Every run of up to ``longest`` whitespace-separated words of ``message``,
    as typed and with surrounding quotes and punctuation stripped."""
    words = message.split()
    found: set[str] = set()
    for i in range(len(words)):
        for j in range(i + 1, min(i + longest, len(words)) + 1):
            text = " ".join(words[i:j])
            found |= {
                text,
                text.strip(_PUNCTUATION),
                text.lstrip(_PUNCTUATION),
                text.rstrip(_PUNCTUATION),
            }
    # values quoted inside a word, e.g. string 'Smith' or "Smith"
    found |= set(re.findall(r"'([^']*)'", message)) | set(re.findall(r'"([^"]*)"', message))
    return found


def hidden_values_in(running: Running, partner: str, message: str, sql: str) -> list[str]:
    """Identifying values in ``message`` the partner may not see and did not type."""
    values = _all_identifying_values(running)
    suspects = [c for c in _candidates(message) if c in values and c not in sql]
    if not suspects:
        return []
    seen = visible_values(running, partner)
    return sorted(c for c in suspects if c not in seen)


def assert_clean_refusal(
    running: Running,
    partner: str,
    sql: str,
    error: grpc.RpcError,
    *,
    codes: Collection[grpc.StatusCode] = REFUSALS,
    fragments: Iterable[str] = (),
) -> None:
    details = error.details() or ""
    assert error.code() in codes, f"{partner}: {sql!r} -> {error.code()}: {details}"
    for fragment in fragments:
        assert fragment.lower() in details.lower(), f"{partner}: {sql!r} -> {details}"
    leaked = hidden_values_in(running, partner, details, sql)
    assert not leaked, f"LEAK in error for {partner}: {sql!r} -> {details!r}: {leaked}"


def refused_or_oracle(
    attacker: Attacker, partner: str, sql: str, *, ordered: bool = False
) -> Rows | None:
    """The core property: a clean refusal, or exactly the oracle's answer.

    Returns the broker's rows (None when refused)."""
    running = attacker.running
    result, error = attacker.ask(partner, sql)
    if error is not None:
        assert_clean_refusal(running, partner, sql, error)
        return None
    assert result is not None
    got = rows(result.table)
    expected: Rows = running.oracle(partner).sql(sql).fetchall()
    assert same_rows(got, expected, ordered), (
        f"{partner}: {sql!r}\n broker {len(got)} rows: {got[:5]}\n"
        f" oracle {len(expected)} rows: {expected[:5]}"
    )
    return got


def answered_as_oracle(
    attacker: Attacker, partner: str, sql: str, *, ordered: bool = False
) -> Rows:
    """Like refused_or_oracle, for queries that are valid and must be answered."""
    result, error = attacker.ask(partner, sql)
    assert error is None, f"{partner}: {sql!r} refused: {error.code()}: {error.details()}"
    assert result is not None
    got = rows(result.table)
    expected: Rows = attacker.running.oracle(partner).sql(sql).fetchall()
    assert same_rows(got, expected, ordered), (
        f"{partner}: {sql!r}\n broker {len(got)} rows: {got[:5]}\n"
        f" oracle {len(expected)} rows: {expected[:5]}"
    )
    return got


def refused(
    attacker: Attacker,
    partner: str,
    sql: str,
    *fragments: str,
    codes: Collection[grpc.StatusCode] = REFUSALS,
) -> grpc.RpcError:
    result, error = attacker.ask(partner, sql)
    if error is None:
        assert result is not None
        pytest.fail(f"{partner}: {sql!r} was answered: {rows(result.table)[:5]}")
    assert_clean_refusal(attacker.running, partner, sql, error, codes=codes, fragments=fragments)
    return error


def role_of(running: Running, partner: str) -> Role:
    return running.policy.roles[running.policy.registry.partners[partner].role]


def visible_columns(running: Running, partner: str, table: str) -> list[str]:
    """Granted columns some source releases (what the catalog shows), without source."""
    grant = role_of(running, partner).tables.get(table)
    if grant is None:
        return []
    return [c for c in running.federation.released_columns(table) if c in grant.columns]


def denied_columns(running: Running, partner: str, table: str) -> list[str]:
    granted = set(visible_columns(running, partner, table))
    return [c for c in running.federation.tables[table].columns if c not in granted]


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def raw(running: Running, partner: str, sql: str) -> Rows:
    """A query over the released raw data (schema ``raw`` of the oracle)."""
    found: Rows = running.oracle(partner).sql(sql).fetchall()
    return found


# --------------------------------------------------------------------------- purpose


@pytest.mark.parametrize("partner", sorted(PURPOSE))
def test_missing_purpose_is_refused_with_the_rule(running, partner):
    with (
        running.client(partner, case_ref=CASE_REF) as client,
        pytest.raises(grpc.RpcError) as caught,
    ):
        client.query("SELECT 1")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "declare a purpose of use" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("partner", "foreign"),
    [
        ("police", "passport_decisions"),
        ("passport_canada", "investigation"),
        ("statistics", "bail_hearing"),
        ("victim", "record_suspension"),
        ("operator", "annual_statistics"),
        ("crown_attorney", "sentence_management"),
        ("contract_agency", "supervision_reports"),
        ("residential_facility", "no_such_purpose"),
    ],
)
def test_a_purpose_of_another_role_is_refused(running, partner, foreign):
    with (
        running.client(partner, purpose=foreign, case_ref=CASE_REF) as client,
        pytest.raises(grpc.RpcError) as caught,
    ):
        client.query("SELECT count(*) FROM offenders")
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"purpose '{foreign}' is not held by role" in (caught.value.details() or "")


@pytest.mark.parametrize("case_ref", ["", "A; DROP TABLE offenders", "x" * 65, "R 1"])
def test_crown_needs_a_well_formed_case_reference(running, case_ref):
    with running.client("crown_attorney", purpose="bail_hearing") as client:
        for call in (client.query, client.explain):
            with pytest.raises(grpc.RpcError) as caught:
                call("SELECT surname FROM offenders", case_ref=case_ref)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "case reference" in (caught.value.details() or "")


@pytest.mark.parametrize("partner", ["police", "crown_attorney", "passport_canada", "victim"])
def test_end_user_travels_as_metadata(running, partner):
    sql = "SELECT count(*) FROM offenders"
    with running.client(
        partner, end_user="officer-4711@example.ca", purpose=PURPOSE[partner], case_ref=CASE_REF
    ) as client:
        result = client.query(sql)
    assert rows(result.table) == running.oracle(partner).sql(sql).fetchall()


# --------------------------------------------------------------------------- operator

OPERATOR_SQL = [
    "SELECT * FROM {t}",
    "SELECT count(*) FROM {t}",
    "SELECT 1 AS x WHERE EXISTS (SELECT 1 FROM {t})",
    "WITH c AS (SELECT * FROM {t}) SELECT count(*) FROM c",
    "SELECT (SELECT count(*) FROM {t}) AS n",
    "SELECT 1 AS x UNION ALL SELECT count(*) FROM {t}",
    'SELECT count(*) FROM "{T}"',
]


@pytest.mark.parametrize("table", TABLES)
def test_operator_sees_no_table(attacker, table):
    for template in OPERATOR_SQL:
        refused(
            attacker,
            "operator",
            template.format(t=table, T=table.upper()),
            f"table {table} is not available to role operator",
            codes=(grpc.StatusCode.PERMISSION_DENIED,),
        )


def test_operator_catalog_is_empty(attacker):
    catalog = attacker.client("operator").catalog()
    assert catalog.role == "operator" and list(catalog.tables) == []


# --------------------------------------------------------------------------- denied tables


def _policy() -> tuple[Federation, PolicySet]:
    """The shipped federation and policy, for parametrizing at collection time."""
    if not _POLICY:
        from accord.federation import load_federation
        from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES
        from broker.policy.store import PolicySet

        federation = load_federation(DEFAULT_FEDERATION)
        _POLICY.append((federation, PolicySet.load(DEFAULT_POLICIES, federation)))
    return _POLICY[0]


_POLICY: list[tuple[Federation, PolicySet]] = []


def _denied_table_cases() -> list[tuple[str, str, str]]:
    federation, policy = _policy()
    cases = []
    for partner in [*ROW_PARTNERS, "statistics"]:
        role = policy.roles[policy.registry.partners[partner].role]
        visible = [t for t in TABLES if t in role.tables]
        for table in TABLES:
            if table not in role.tables or not federation.released_columns(table):
                cases.append((partner, table, visible[0]))
    return cases


DENIED_TABLE_SQL = [
    "SELECT * FROM {t}",
    "SELECT count(*) FROM {t}",
    "SELECT count(*) FROM {v} WHERE EXISTS (SELECT 1 FROM {t} x WHERE x.fps_number = 'x')",
    "SELECT count(*) FROM {v} WHERE source IN (SELECT source FROM {t})",
    "SELECT (SELECT count(*) FROM {t}) AS n FROM {v}",
    "WITH c AS (SELECT * FROM {t}) SELECT count(*) FROM c",
    "WITH {v} AS (SELECT * FROM {t}) SELECT count(*) FROM {v}",
    "SELECT source FROM {v} UNION SELECT source FROM {t}",
    "SELECT source FROM {v} EXCEPT SELECT source FROM {t}",
    "SELECT count(*) FROM {v} a JOIN {t} b ON a.source = b.source",
    "SELECT count(*) FROM {v} a LEFT JOIN {t} b ON a.source = b.source",
    "SELECT count(*) FROM (SELECT * FROM (SELECT * FROM {t}) x) y",
    'SELECT count(*) FROM "{T}"',
    "SELECT count(*) FROM {t} AS {v}",
]


@pytest.mark.parametrize(("partner", "table", "visible"), _denied_table_cases())
def test_denied_tables_do_not_exist_anywhere_in_a_query(attacker, partner, table, visible):
    for template in DENIED_TABLE_SQL:
        sql = template.format(t=table, T=table.upper(), v=visible)
        if partner == "statistics" and "WHERE" in sql:
            continue  # aggregate rules may refuse first; covered below
        refused(
            attacker,
            partner,
            sql,
            f"table {table} is not available",
            codes=(grpc.StatusCode.PERMISSION_DENIED,),
        )


def test_health_notes_is_refused_for_every_role(attacker):
    for partner in PURPOSE:
        refused(
            attacker,
            partner,
            "SELECT note FROM health_notes",
            "table health_notes is not available",
            codes=(grpc.StatusCode.PERMISSION_DENIED,),
        )


# --------------------------------------------------------------------------- denied columns

DENIED_COLUMN_SQL = [
    "SELECT {c} FROM {t}",
    "SELECT {t}.{c} FROM {t}",
    'SELECT "{C}" FROM {t}',
    "SELECT count(*) FROM {t} WHERE {c} IS NOT NULL",
    "SELECT count(*) FROM {t} WHERE {c} = 'x' OR TRUE",
    "SELECT {v} FROM {t} ORDER BY {c}",
    "SELECT count(*) FROM {t} GROUP BY {c}",
    "SELECT count(*) FROM {t} a JOIN {t} b ON a.{c} = b.{c}",
    "SELECT count(*) FROM {t} a JOIN {t} b ON a.{v} = b.{v} AND a.{c} IS NULL",
    "SELECT x FROM (SELECT {c} AS x FROM {t}) s",
    "SELECT count(*) FROM (SELECT {v} FROM {t} WHERE {c} IS NULL) s",
    "WITH w AS (SELECT {c} FROM {t}) SELECT count(*) FROM w",
    "WITH w AS (SELECT * FROM {t}) SELECT {c} FROM w",
    "SELECT {v} FROM {t} UNION SELECT {c} FROM {t}",
    "SELECT {v} FROM {t} UNION ALL SELECT {v} FROM {t} WHERE {c} > ''",
    "SELECT (SELECT max({c}) FROM {t}) AS m",
    "SELECT count(*) FROM {t} o WHERE EXISTS (SELECT 1 FROM {t} x WHERE x.{c} = o.{v})",
    "SELECT count(*) FROM {t} WHERE {v} IN (SELECT {c} FROM {t})",
    "SELECT count(*) OVER (PARTITION BY {c}) FROM {t}",
    "SELECT count(*) FROM {t} HAVING max({c}) IS NOT NULL",
    "SELECT count(DISTINCT {c}) FROM {t}",
    "SELECT coalesce({c}, {v}) FROM {t}",
    "SELECT {v} FROM {t} QUALIFY row_number() OVER (ORDER BY {c}) = 1",
]


def _denied_column_cases() -> list[tuple[str, str, str, str]]:
    federation, policy = _policy()
    prefer = [
        "source",
        "address",
        "birth_date",
        "fps_number",
        "source_person_id",
        "parole_officer",
        "conditions",
        "notes",
        "summary",
        "assigned_facility",
        "birth_place",
        "security_level",
        "photo_ref",
        "status",
    ]
    cases = []
    for partner in ROW_PARTNERS:
        role = policy.roles[policy.registry.partners[partner].role]
        for table, grant in role.tables.items():
            released = federation.released_columns(table)
            visible = [c for c in released if c in grant.columns]
            denied = [c for c in federation.tables[table].columns if c not in visible]
            if "source" not in grant.columns:  # the broker's column, denied like any other
                denied.insert(0, "source")
            denied.sort(key=lambda c: prefer.index(c) if c in prefer else len(prefer))
            # The text-typed visible column joins and compares without type errors.
            anchor = next(
                (
                    c
                    for c in visible
                    if federation.tables[table].columns[c] == "VARCHAR"
                    and (grant.columns[c] is None)
                ),
                visible[0],
            )
            for column in denied[:2]:
                cases.append((partner, table, column, anchor))
    return cases


@pytest.mark.parametrize(("partner", "table", "column", "anchor"), _denied_column_cases())
def test_denied_columns_do_not_exist_anywhere_in_a_query(attacker, partner, table, column, anchor):
    for template in DENIED_COLUMN_SQL:
        sql = template.format(t=table, c=column, C=column.upper(), v=anchor)
        if "HAVING" in sql:  # see test_denied_column_in_having_is_a_policy_denial
            refused(attacker, partner, sql, column)
            continue
        refused(
            attacker,
            partner,
            sql,
            f"column {column} is not available to role",
            codes=(grpc.StatusCode.PERMISSION_DENIED,),
        )


def test_denied_column_in_having_is_a_policy_denial(attacker):
    refused(
        attacker,
        "crown_attorney",
        "SELECT count(*) FROM offenders HAVING max(address) IS NOT NULL",
        "column address is not available to role",
        codes=(grpc.StatusCode.PERMISSION_DENIED,),
    )


@pytest.mark.parametrize("partner", ROW_PARTNERS)
def test_star_expands_to_the_entitled_columns_only(attacker, partner):
    running = attacker.running
    for table in role_of(running, partner).tables:
        if not visible_columns(running, partner, table):
            continue
        sql = f"SELECT * FROM {table} ORDER BY ALL LIMIT 30"
        result, error = attacker.ask(partner, sql)
        assert error is None, error.details()
        source = ["source"] if "source" in role_of(running, partner).tables[table].columns else []
        assert result.table.column_names == [*visible_columns(running, partner, table), *source]
        assert same_rows(
            rows(result.table), running.oracle(partner).sql(sql).fetchall(), ordered=True
        )


# --------------------------------------------------------------------------- masked columns


@pytest.fixture(scope="module")
def secrets(running: Running) -> dict[str, list[str]]:
    """Raw values a masked column hides, taken from the released raw data."""
    o = running.oracle("passport_canada")
    fps = [
        r[0]
        for r in o.sql(
            "SELECT DISTINCT fps_number FROM raw.offenders WHERE fps_number IS NOT NULL AND "
            "status IN ('IN_CUSTODY', 'SUPERVISED', 'UAL') ORDER BY 1 LIMIT 3"
        ).fetchall()
    ]
    police = running.oracle("police")
    addresses = [
        r[0]
        for r in police.sql(
            "SELECT address FROM raw.offenders WHERE address IS NOT NULL AND length(address) > 12 "
            "AND (status = 'UAL' OR (status = 'SUPERVISED' AND supervising_jurisdiction = 'BC')) "
            "ORDER BY 1 LIMIT 3"
        ).fetchall()
    ]
    return {"fps": fps, "addresses": addresses, "linked": victim_linked_fps(running)}


def victim_linked_fps(running: Running) -> list[str]:
    """FPS numbers of the offenders the victim partner's registration links."""
    registration = running.policy.registry.partners["victim"].attributes["victim_registration"]
    linked = running.oracle("victim").sql(
        "SELECT DISTINCT fps_number FROM raw.victim_cases "
        f"WHERE victim_registration = {sql_text(str(registration))} AND fps_number IS NOT NULL"
    )
    return [r[0] for r in linked.fetchall()]


def test_keyed_hash_matches_no_real_fps_number(attacker, secrets):
    fps = secrets["fps"]
    for partner in ("passport_canada", "border_services", "victim"):
        targets = fps + (secrets["linked"] if partner == "victim" else [])
        in_list = ", ".join(map(sql_text, targets))
        for sql in [
            f"SELECT * FROM offenders WHERE fps_number = {sql_text(targets[-1])}",
            f"SELECT * FROM offenders WHERE fps_number IN ({in_list})",
            f"SELECT * FROM offenders WHERE fps_number LIKE '%' || {sql_text(targets[-1])} || '%'",
            f"SELECT * FROM offenders WHERE upper(fps_number) = {sql_text(targets[-1])}",
            "SELECT * FROM offenders WHERE regexp_matches(fps_number, '^[0-9]{7}[A-Z]$')",
            "SELECT * FROM offenders WHERE length(fps_number) = 8",
            f"WITH offenders AS (SELECT * FROM offenders) SELECT * FROM offenders "
            f"WHERE fps_number = {sql_text(targets[-1])}",
        ]:
            assert answered_as_oracle(attacker, partner, sql) == []


@pytest.mark.parametrize("partner", ["passport_canada", "border_services", "victim"])
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT fps_number, count(*) AS n FROM offenders GROUP BY fps_number ORDER BY ALL",
        "SELECT fps_number, surname FROM offenders ORDER BY fps_number NULLS FIRST, surname "
        "NULLS FIRST LIMIT 20",
        "SELECT length(fps_number), substr(fps_number, 1, 12), left(fps_number, 3), "
        "right(fps_number, 4), upper(fps_number) FROM offenders ORDER BY ALL",
        "SELECT DISTINCT length(fps_number) FROM offenders ORDER BY ALL",
        "SELECT min(fps_number), max(fps_number), count(DISTINCT fps_number) FROM offenders",
        "SELECT a.fps_number FROM offenders a JOIN offenders b ON a.fps_number = b.fps_number "
        "AND a.surname IS NOT NULL ORDER BY ALL",
        "SELECT fps_number, row_number() OVER (ORDER BY fps_number, surname) FROM offenders "
        "ORDER BY ALL LIMIT 15",
    ],
)
def test_operations_on_a_keyed_hash_see_only_the_hash(attacker, partner, sql):
    answered_as_oracle(attacker, partner, sql, ordered="ORDER BY" in sql)


def test_keyed_hash_joins_within_one_partner_but_not_across_partners(attacker):
    running = attacker.running
    answered_as_oracle(
        attacker,
        "passport_canada",
        "SELECT o.surname, a.alias_surname FROM offenders o JOIN aliases a "
        "ON a.fps_number = o.fps_number ORDER BY ALL",
        ordered=True,
    )
    answered_as_oracle(
        attacker,
        "victim",
        "SELECT o.surname, s.offence_code, r.eligibility_date FROM offenders o "
        "JOIN sentences s ON s.fps_number = o.fps_number JOIN releases r "
        "ON r.fps_number = o.fps_number ORDER BY ALL",
        ordered=True,
    )
    # Passport's pseudonyms are not CBSA's: the same person hashes differently.
    passport = {
        r[0]
        for r in running.oracle("passport_canada")
        .sql("SELECT fps_number FROM offenders WHERE fps_number IS NOT NULL")
        .fetchall()
    }
    border = {
        r[0]
        for r in running.oracle("border_services")
        .sql("SELECT fps_number FROM offenders WHERE fps_number IS NOT NULL")
        .fetchall()
    }
    assert passport and border and not passport & border
    in_list = ", ".join(map(sql_text, sorted(passport)[:200]))
    assert (
        answered_as_oracle(
            attacker, "border_services", f"SELECT * FROM offenders WHERE fps_number IN ({in_list})"
        )
        == []
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT address FROM offenders ORDER BY address NULLS FIRST, fps_number NULLS FIRST",
        "SELECT address, count(*) FROM offenders GROUP BY address ORDER BY ALL",
        "SELECT substr(address, 1, 10), length(address), right(address, 8), left(address, 3), "
        "reverse(address), replace(address, '*', '') FROM offenders ORDER BY ALL",
        "SELECT strpos(address, ' '), contains(address, '*'), starts_with(address, '1') "
        "FROM offenders ORDER BY ALL",
        "SELECT count(*) FROM offenders WHERE regexp_matches(address, '^[0-9]')",
        "SELECT count(*) FROM offenders WHERE address LIKE '1%' OR address LIKE '%Street%'",
        "SELECT min(address), max(address) FROM offenders",
        "SELECT a.fps_number, b.fps_number FROM offenders a JOIN offenders b "
        "ON a.address = b.address AND a.fps_number < b.fps_number ORDER BY ALL",
        "SELECT address, row_number() OVER (ORDER BY address, fps_number) FROM offenders "
        "ORDER BY ALL",
    ],
)
def test_police_address_mask_shows_only_the_city(attacker, sql):
    answered_as_oracle(attacker, "police", sql, ordered="ORDER BY" in sql)


def test_police_cannot_match_a_real_address(attacker, secrets):
    for address in secrets["addresses"]:
        for sql in [
            f"SELECT * FROM offenders WHERE address = {sql_text(address)}",
            f"SELECT * FROM offenders WHERE address LIKE {sql_text(address[:6] + '%')}",
            f"SELECT * FROM offenders WHERE levenshtein(address, {sql_text(address)}) = 0",
            f"SELECT * FROM offenders WHERE substr(address, 1, 5) = {sql_text(address[:5])}",
        ]:
            assert answered_as_oracle(attacker, "police", sql) == []


def test_cast_of_a_masked_value_echoes_only_the_masked_value(attacker, secrets):
    running = attacker.running
    all_fps = {
        r[0]
        for r in raw(
            running,
            "passport_canada",
            "SELECT fps_number FROM raw.offenders WHERE fps_number IS NOT NULL",
        )
    }
    all_addresses = {
        r[0]
        for r in raw(
            running, "police", "SELECT address FROM raw.offenders WHERE address IS NOT NULL"
        )
    }
    cases = [
        ("police", "SELECT CAST(address AS INTEGER) FROM offenders", all_addresses),
        (
            "police",
            "SELECT count(*) FROM offenders WHERE CAST(address AS INTEGER) = 1",
            all_addresses,
        ),
        ("police", "SELECT CAST(address AS DATE) FROM offenders", all_addresses),
        ("passport_canada", "SELECT CAST(fps_number AS INTEGER) FROM offenders", all_fps),
        ("passport_canada", "SELECT strptime(fps_number, '%Y') FROM offenders", all_fps),
        ("border_services", "SELECT CAST(fps_number AS DATE) FROM offenders", all_fps),
        ("passport_canada", "SELECT CAST(fps_number AS INTEGER) FROM aliases", all_fps),
    ]
    for partner, sql, secret_values in cases:
        error = refused(attacker, partner, sql, codes=(grpc.StatusCode.INVALID_ARGUMENT,))
        details = error.details()
        assert details is not None, (partner, sql)
        assert not [v for v in secret_values if v in details], (partner, sql, details)


def test_year_only_dates_for_statistics(attacker):
    running = attacker.running
    # A date literal against a year: a type error or nothing, never a match on the day.
    result, error = attacker.ask(
        "statistics", "SELECT count(*) FROM offenders WHERE birth_date = DATE '1980-01-01'"
    )
    if error is None:
        assert rows(result.table) in ([], [(0,)])
    else:
        assert_clean_refusal(running, "statistics", "", error)
    for sql in [
        "SELECT month(birth_date) AS m, count(*) FROM offenders GROUP BY m",
        "SELECT count(*) FROM offenders WHERE birth_date > DATE '1980-06-01'",
    ]:
        result, error = attacker.ask("statistics", sql)
        assert error is not None, rows(result.table)
        assert_clean_refusal(running, "statistics", sql, error)
    result, error = attacker.ask(
        "statistics", "SELECT birth_date, count(*) FROM offenders GROUP BY birth_date"
    )
    assert error is None
    years = [r[0] for r in rows(result.table)]
    assert all(y is None or (isinstance(y, int) and 1900 < y < 2100) for y in years)


# --------------------------------------------------------------------------- shadowing, quoting


@pytest.mark.parametrize(
    ("partner", "sql"),
    [
        ("police", "WITH offenders AS (SELECT * FROM sentences) SELECT * FROM offenders"),
        ("police", "SELECT * FROM sentences AS offenders"),
        (
            "police",
            "SELECT * FROM alerts offenders JOIN offenders o ON o.fps_number = "
            "offenders.fps_number",
        ),
        (
            "police",
            "SELECT * FROM (WITH offenders AS (SELECT * FROM alerts) SELECT * FROM offenders) t",
        ),
        (
            "police",
            "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM offenders) SELECT count(*) FROM a",
        ),
        ("police", 'WITH "table" AS (SELECT * FROM "table") SELECT * FROM "table"'),
        (
            "police",
            "WITH sqlite_master AS (SELECT * FROM sqlite_master) SELECT * FROM sqlite_master",
        ),
        ("police", "WITH x AS (SELECT 1 AS a) SELECT * FROM x, incidents"),
        (
            "crown_attorney",
            "WITH health_notes AS (SELECT * FROM health_notes) SELECT * FROM health_notes",
        ),
        ("crown_attorney", "WITH x AS (SELECT * FROM health_notes) SELECT count(*) FROM x"),
        ("crown_attorney", "SELECT * FROM aliases AS offenders"),
        (
            "passport_canada",
            "WITH sentences AS (SELECT * FROM offenders) SELECT * FROM sentences "
            "s JOIN releases r ON r.fps_number = s.fps_number",
        ),
        ("contract_agency", "WITH offenders AS (SELECT * FROM releases) SELECT * FROM offenders"),
        ("victim", "WITH offenders AS (SELECT * FROM alerts) SELECT count(*) FROM offenders"),
    ],
)
def test_aliases_and_ctes_cannot_rename_a_denied_table(attacker, partner, sql):
    refused(attacker, partner, sql)


@pytest.mark.parametrize(
    ("partner", "sql"),
    [
        (
            "revenue_federal",
            "WITH offenders AS (SELECT * FROM sentences) SELECT * FROM offenders ORDER BY ALL",
        ),
        ("revenue_federal", "SELECT offenders.* FROM sentences AS offenders ORDER BY ALL"),
        ("police", "SELECT * FROM releases AS offenders ORDER BY ALL"),
        (
            "police",
            "WITH offenders AS (SELECT * FROM offenders) SELECT address, surname "
            "FROM offenders ORDER BY ALL",
        ),
        (
            "police",
            "WITH aliases AS (SELECT fps_number, address AS alias_surname, "
            "surname AS alias_given_names, source FROM offenders) "
            "SELECT * FROM aliases ORDER BY ALL",
        ),
        (
            "police",
            "WITH RECURSIVE offenders AS (SELECT * FROM offenders) SELECT count(*) FROM offenders",
        ),
        (
            "crown_attorney",
            "WITH health_notes AS (SELECT * FROM offenders) "
            "SELECT * FROM health_notes ORDER BY ALL LIMIT 40",
        ),
        (
            "passport_canada",
            "WITH offenders AS (SELECT * FROM aliases) SELECT * FROM offenders ORDER BY ALL",
        ),
        (
            "flagging_coordinator",
            "WITH o AS (SELECT * FROM offenders), offenders AS "
            "(SELECT * FROM o) SELECT count(*) FROM offenders",
        ),
        ("immigration", "SELECT count(*) FROM (SELECT * FROM offenders) AS alerts"),
        (
            "victim",
            "WITH sentences AS (SELECT * FROM offenders) SELECT * FROM sentences ORDER BY ALL",
        ),
    ],
)
def test_aliases_and_ctes_see_only_the_secure_view(attacker, partner, sql):
    answered_as_oracle(attacker, partner, sql, ordered="ORDER BY" in sql)


QUOTING = [
    ('SELECT count(*) FROM "OFFENDERS"', "ok"),
    ('SELECT count(*) FROM "Offenders"', "ok"),
    ("SELECT count(*) FROM OfFeNdErS", "ok"),
    ("SELECT count(*) FROM offenders/* comment */", "ok"),
    ("SELECT count(*) FROM /* comment */offenders", "ok"),
    ("SELECT count(*) FROM offenders -- comment\n", "ok"),
    ("SELECT count(*) FROM main.offenders", "refused"),
    ('SELECT count(*) FROM "main"."offenders"', "refused"),
    ("SELECT count(*) FROM memory.main.offenders", "refused"),
    ("SELECT count(*) FROM raw.offenders", "refused"),
    ("SELECT count(*) FROM temp.offenders", "refused"),
    ("SELECT count(*) FROM off/**/enders", "refused"),
    ('SELECT count(*) FROM "off""enders"', "refused"),
    ('SELECT count(*) FROM "offenders "', "refused"),
    ('SELECT count(*) FROM "offenders\u200b"', "refused"),
    ("SELECT count(*) FROM off\u200benders", "refused"),
    ("SELECT count(*) FROM \u043effenders", "refused"),  # Cyrillic o
    ("SELECT count(*) FROM \uff4f\uff46\uff46\uff45\uff4e\uff44\uff45\uff52\uff53", "refused"),
    ('SELECT count(*) FROM "health_notes"', "refused"),
    ('SELECT count(*) FROM "HEALTH_NOTES"', "refused"),
    ("SELECT count(*) FROM health\u200b_notes", "refused"),
    ("SELECT count(*) FROM \u04bbealth_notes", "refused"),  # Cyrillic shha
]


@pytest.mark.parametrize(
    "partner", ["police", "crown_attorney", "passport_canada", "flagging_coordinator"]
)
def test_quoting_case_and_lookalike_table_names(attacker, partner):
    for sql, expected in QUOTING:
        if expected == "ok":
            answered_as_oracle(attacker, partner, sql)
        else:
            refused(attacker, partner, sql)


@pytest.mark.parametrize(
    ("partner", "column"),
    [
        ("crown_attorney", "address"),
        ("passport_canada", "status"),
        ("police", "birth_place"),
        ("contract_agency", "birth_date"),
    ],
)
def test_quoting_case_and_lookalike_column_names(attacker, partner, column):
    cyrillic = column.replace("a", "\u0430").replace("o", "\u043e").replace("e", "\u0435")
    assert cyrillic != column
    denied = [
        f'SELECT "{column.upper()}" FROM offenders',
        f'SELECT "{column.title()}" FROM offenders',
        f"SELECT offenders.{column.upper()} FROM offenders",
        f'SELECT o."{column}" FROM offenders o',
    ]
    for sql in denied:
        refused(
            attacker,
            partner,
            sql,
            f"column {column} is not available",
            codes=(grpc.StatusCode.PERMISSION_DENIED,),
        )
    unknown = [
        f'SELECT "{column} " FROM offenders',
        f'SELECT "{column[:2]}\u200b{column[2:]}" FROM offenders',
        f"SELECT {cyrillic} FROM offenders",
        f'SELECT "\uff41{column[1:]}" FROM offenders',
        f"SELECT {column[:2]}/**/{column[2:]} FROM offenders",
    ]
    for sql in unknown:
        refused(attacker, partner, sql)


# --------------------------------------------------------------------------- row filters


def _key(running: Running, partner: str) -> str:
    cols = visible_columns(running, partner, "offenders")
    return next(c for c in ("fps_number", "surname", *cols) if c in cols)


def _other_table(running: Running, partner: str) -> str | None:
    tables = [
        t
        for t in role_of(running, partner).tables
        if t != "offenders" and "fps_number" in visible_columns(running, partner, t)
    ]
    return tables[0] if tables else None


ESCAPES = [
    "SELECT * FROM offenders WHERE TRUE OR 1 = 1 ORDER BY ALL",
    "SELECT * FROM offenders WHERE NOT ({k} IS NULL AND {k} IS NOT NULL) ORDER BY ALL",
    "SELECT count(*), count(DISTINCT source) FROM offenders",
    "SELECT count(*) FROM (SELECT * FROM offenders UNION ALL SELECT * FROM offenders) u",
    "SELECT {k} FROM offenders UNION SELECT {k} FROM offenders o2 WHERE TRUE "
    "ORDER BY 1 NULLS FIRST",
    "SELECT {k} FROM offenders EXCEPT SELECT {k} FROM offenders WHERE FALSE ORDER BY 1 NULLS FIRST",
    "SELECT {k} FROM offenders INTERSECT SELECT {k} FROM offenders ORDER BY 1 NULLS FIRST",
    "SELECT count(*), count(DISTINCT a.{k}) FROM offenders a JOIN offenders b "
    "ON a.source = b.source",
    "SELECT count(*), count(b.{k}) FROM offenders a LEFT JOIN offenders b ON FALSE",
    "SELECT count(*), count(a.{k}) FROM offenders a RIGHT JOIN offenders b ON FALSE",
    "SELECT count(*), count(a.{k}), count(b.{k}) FROM offenders a FULL JOIN offenders b "
    "ON a.{k} = b.{k} AND FALSE",
    "SELECT {k}, (SELECT count(*) FROM offenders x WHERE x.source = o.source) AS n "
    "FROM offenders o ORDER BY ALL",
    "SELECT count(*) FROM offenders WHERE {k} IN (SELECT {k} FROM offenders) "
    "OR {k} NOT IN (SELECT {k} FROM offenders WHERE {k} IS NOT NULL)",
    "SELECT DISTINCT count(*) OVER () AS n FROM offenders",
    "SELECT count(*) FROM offenders WHERE EXISTS (SELECT 1) OR NOT EXISTS (SELECT 1)",
    "SELECT o.{k} FROM offenders o POSITIONAL JOIN (SELECT 1 AS one) p ORDER BY ALL",
    "SELECT count(*) FROM offenders o ANTI JOIN offenders x ON x.{k} = o.{k}",
    "SELECT count(*) FROM offenders NATURAL FULL JOIN offenders",
    "SELECT * FROM offenders WHERE source IN ('BC', 'ON', 'QC', 'SK', 'YT', 'CA-CSC') ORDER BY ALL",
]

CROSS = [
    "SELECT fps_number FROM offenders UNION SELECT fps_number FROM {o} ORDER BY 1 NULLS FIRST",
    "SELECT fps_number FROM {o} EXCEPT SELECT fps_number FROM offenders ORDER BY 1 NULLS FIRST",
    "SELECT count(*), count(o.fps_number), count(x.fps_number) FROM offenders o "
    "FULL JOIN {o} x ON x.fps_number = o.fps_number",
    "SELECT count(*) FROM {o} x LEFT JOIN offenders o ON o.fps_number = x.fps_number "
    "WHERE o.fps_number IS NULL",
    "SELECT count(*) FROM {o} WHERE fps_number NOT IN (SELECT fps_number FROM offenders "
    "WHERE fps_number IS NOT NULL)",
    "SELECT x.fps_number, (SELECT count(*) FROM offenders o WHERE o.fps_number = "
    "x.fps_number) AS n FROM {o} x ORDER BY ALL",
]


@pytest.mark.parametrize("partner", FILTERED)
def test_row_filters_cannot_be_escaped(attacker, partner):
    key = _key(attacker.running, partner)
    for template in ESCAPES:
        sql = template.format(k=key)
        refused_or_oracle(attacker, partner, sql, ordered="ORDER BY ALL" in sql)
    other = _other_table(attacker.running, partner)
    for template in CROSS if other else []:
        sql = template.format(o=other)
        refused_or_oracle(attacker, partner, sql, ordered="ORDER BY" in sql)


@pytest.mark.parametrize("partner", FILTERED)
def test_paging_returns_the_visible_rows_and_no_more(attacker, partner):
    running = attacker.running
    total = running.oracle(partner).sql("SELECT count(*) FROM offenders").fetchall()[0][0]
    base = "SELECT * FROM offenders ORDER BY ALL"
    pages, offset, size = [], 0, max(total // 3, 1) + 1
    while True:
        sql = f"{base} LIMIT {size} OFFSET {offset}"
        page = answered_as_oracle(attacker, partner, sql, ordered=True)
        pages += page
        if not page:
            break
        offset += size
    assert len(pages) == total
    assert answered_as_oracle(attacker, partner, f"{base} LIMIT 5 OFFSET {total}") == []
    answered_as_oracle(attacker, partner, "SELECT * FROM offenders LIMIT 1000000")


@pytest.mark.parametrize(
    "partner", ["police", "passport_canada", "flagging_coordinator", "immigration", "victim"]
)
def test_window_over_the_whole_table_counts_visible_rows(attacker, partner):
    running = attacker.running
    visible = running.oracle(partner).sql("SELECT count(*) FROM offenders").fetchall()[0][0]
    got = answered_as_oracle(attacker, partner, "SELECT DISTINCT count(*) OVER () FROM offenders")
    assert got in ([(visible,)], [])
    key = (
        "source" if "source" in role_of(running, partner).tables["offenders"].columns else "surname"
    )
    answered_as_oracle(
        attacker,
        partner,
        f"SELECT {key}, count(*) OVER (PARTITION BY {key}), "
        f"percent_rank() OVER (ORDER BY {key}) FROM offenders ORDER BY ALL",
        ordered=True,
    )


def test_parenthesized_join_is_refused_not_answered_wrong(attacker):
    # Once answered without its inner join (the rewrite dropped it): refused now.
    refused(
        attacker,
        "police",
        "SELECT count(*) FROM offenders o JOIN (aliases a JOIN releases r "
        "ON a.fps_number = r.fps_number) ON o.fps_number = a.fps_number",
        "parenthesized joins are not supported",
    )


def test_parenthesized_join_cannot_hide_a_denied_table(attacker):
    refused(
        attacker,
        "police",
        "SELECT count(*) FROM offenders o JOIN (aliases a JOIN health_notes h "
        "ON a.fps_number = h.fps_number) ON o.fps_number = a.fps_number",
    )
    refused(
        attacker,
        "police",
        "SELECT count(*) FROM offenders o LEFT JOIN (aliases a JOIN sentences s "
        "ON a.fps_number = s.fps_number) ON o.fps_number = a.fps_number",
    )


# --------------------------------------------------------------------------- functions

FORBIDDEN = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('offenders.csv')",
    "SELECT * FROM read_parquet('x.parquet')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('*')",
    "SELECT * FROM 'offenders.csv'",
    'SELECT * FROM "/etc/passwd"',
    "SELECT getenv('HOME')",
    "SELECT current_setting('enable_external_access')",
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM duckdb_tables",
    "SELECT * FROM duckdb_views",
    "SELECT * FROM duckdb_columns()",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM information_schema.columns",
    "SELECT * FROM pg_catalog.pg_class",
    "SELECT * FROM pg_class",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM pragma_table_info('offenders')",
    "SELECT * FROM query('SELECT 1')",
    "SELECT * FROM query_table('offenders')",
    "SELECT * FROM range(3)",
    "SELECT * FROM generate_series(1, 3)",
    "SELECT version()",
    "SELECT current_database()",
    "SELECT error('boom')",
    "SELECT md5(surname) FROM offenders",
    "SELECT hash(surname) FROM offenders",
    "SELECT sha256(surname) FROM offenders",
    "SELECT unhex('41')",
    "SELECT encode('x')",
    "SELECT accord_keyed_hash(surname) FROM offenders",
    "SELECT ACCORD_KEYED_HASH(surname) FROM offenders",
    'SELECT "accord_keyed_hash"(surname) FROM offenders',
    "SELECT count(*) FROM offenders WHERE fps_number = accord_keyed_hash('1234567A')",
    "SELECT regexp_extract(surname, '(.*)') FROM offenders",
    "SELECT list_transform([1], x -> x + 1)",
    "SELECT struct_pack(a := 1)",
    "SELECT * FROM offenders, LATERAL (SELECT 1) t",
    "SELECT unnest([1, 2])",
    "SELECT $1",
    "SELECT * FROM offenders WHERE surname = ?",
    "PIVOT offenders ON source USING count(*)",
    "DESCRIBE offenders",
    "SUMMARIZE offenders",
    "SHOW TABLES",
    "EXPLAIN SELECT 1",
    "CALL pragma_version()",
    "EXPORT DATABASE '/tmp/x'",
    "CREATE TABLE x AS SELECT 1",
    "CREATE MACRO m(x) AS x",
    "INSERT INTO offenders (surname) VALUES ('x')",
    "UPDATE offenders SET surname = 'x'",
    "SELECT * INTO x FROM offenders",
    "DETACH memory",
    "USE memory",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "SELECT 1; SELECT 2",
    # internal names: the hidden person columns, the registered Arrow tables,
    # the merge function's locals (DuckDB's Python replacement scans)
    "SELECT __accord_person FROM offenders",
    "SELECT __accord_persons FROM offenders",
    "SELECT count(DISTINCT __accord_person) FROM offenders",
    "SELECT * FROM ref1",
    "SELECT * FROM q00000000_ref1",
    'SELECT * FROM "table"',
    "SELECT * FROM tables",
    "SELECT * FROM incoming",
    "SELECT * FROM _offenders",
]


@pytest.mark.parametrize("partner", ["police", "crown_attorney", "passport_canada", "statistics"])
def test_forbidden_functions_tables_and_statements(attacker, partner):
    for sql in FORBIDDEN:
        refused(attacker, partner, sql)


@pytest.mark.parametrize("partner", ["police", "passport_canada", "flagging_coordinator"])
def test_forbidden_things_hidden_in_subqueries_and_ctes(attacker, partner):
    for inner in [
        "read_csv('/etc/passwd')",
        "duckdb_settings()",
        "sqlite_master",
        "information_schema.tables",
        "'x.csv'",
        "health_notes",
    ]:
        for sql in [
            f"SELECT count(*) FROM offenders WHERE EXISTS (SELECT 1 FROM {inner})",
            f"WITH c AS (SELECT * FROM {inner}) SELECT count(*) FROM c",
            f"SELECT (SELECT count(*) FROM {inner}) FROM offenders",
            f"SELECT 1 AS x UNION SELECT 1 FROM {inner}",
        ]:
            refused(attacker, partner, sql)


# --------------------------------------------------------------------------- side channels


@pytest.mark.parametrize(
    ("partner", "table", "column"),
    [
        ("crown_attorney", "offenders", "address"),
        ("passport_canada", "offenders", "status"),
        ("police", "offenders", "birth_place"),
        ("residential_facility", "offenders", "address"),
        ("victim", "offenders", "birth_date"),
        ("flagging_coordinator", "alerts", "source_person_id"),
    ],
)
def test_denial_is_the_same_whether_or_not_a_row_matches(attacker, partner, table, column):
    running = attacker.running
    real = raw(
        running,
        partner,
        f"SELECT CAST({column} AS VARCHAR) FROM raw.{table} WHERE {column} IS NOT NULL LIMIT 1",
    )[0][0]
    messages = set()
    for literal in [real, "no such value", real[::-1]]:
        error = refused(
            attacker,
            partner,
            f"SELECT count(*) FROM {table} WHERE {column} = {sql_text(literal)}",
            codes=(grpc.StatusCode.PERMISSION_DENIED,),
        )
        messages.add((error.code(), without_query_id(error.details() or "")))
    assert len(messages) == 1, messages


@pytest.mark.parametrize(
    ("partner", "table"),
    [
        ("police", "alerts"),
        ("passport_canada", "sentences"),
        ("victim", "incidents"),
        ("contract_agency", "releases"),
    ],
)
def test_denied_table_is_the_same_whether_or_not_a_row_matches(attacker, partner, table):
    running = attacker.running
    real = raw(
        running, partner, f"SELECT fps_number FROM raw.{table} WHERE fps_number IS NOT NULL LIMIT 1"
    )[0][0]
    messages = {
        without_query_id(
            refused(
                attacker,
                partner,
                f"SELECT count(*) FROM {table} WHERE fps_number = {sql_text(literal)}",
            ).details()
            or ""
        )
        for literal in (real, "0000000X")
    }
    assert len(messages) == 1, messages


def _hidden_text_columns() -> list[tuple[str, str, str]]:
    """(partner, table, column): clear text columns of row-filtered views."""
    return [
        ("flagging_coordinator", "offenders", "surname"),
        ("flagging_coordinator", "offenders", "status"),
        ("flagging_coordinator", "offenders", "gender"),
        ("flagging_coordinator", "sentences", "offence_description"),
        ("flagging_coordinator", "alerts", "notes"),
        ("border_services", "offenders", "surname"),
        ("immigration", "offenders", "surname"),
        ("immigration", "offenders", "given_names"),
        ("immigration", "offenders", "fps_number"),
        ("sex_offender_registry_on", "offenders", "surname"),
        ("sex_offender_registry_on", "offenders", "gender"),
        ("sex_offender_registry_on", "aliases", "alias_surname"),
        ("sex_offender_registry_on", "releases", "release_type"),
        ("sex_offender_registry_national", "offenders", "supervising_jurisdiction"),
        ("residential_facility", "offenders", "surname"),
        ("residential_facility", "releases", "parole_officer"),
        ("residential_facility", "releases", "conditions"),
        ("residential_facility", "releases", "parole_office_phone"),
        ("passport_canada", "offenders", "surname"),
        ("passport_canada", "aliases", "alias_surname"),
        ("police", "offenders", "surname"),
        ("police", "aliases", "alias_surname"),
        ("police", "releases", "parole_officer"),
        ("revenue_quebec", "offenders", "surname"),
        ("revenue_federal", "sentences", "fps_number"),
        ("victim", "offenders", "surname"),
        ("conviction_review", "offenders", "surname"),
        ("contract_agency", "offenders", "surname"),
    ]


def _cast_cases() -> list[ParameterSet]:
    # Once a leak (DuckDB evaluated the caller's CAST below the row filter's
    # semi-join and quoted hidden values); fixed by materializing secure views.
    return [pytest.param(*case, id="-".join(case)) for case in _hidden_text_columns()]


@pytest.mark.parametrize(("partner", "table", "column"), _cast_cases())
def test_a_failing_cast_never_evaluates_hidden_rows(attacker, partner, table, column):
    """Every visible value maps to '0'; only a row outside the view could fail the
    CAST. On the entitled view the answer is 0, without error."""
    running = attacker.running
    visible = sorted(
        {
            r[0]
            for r in running.oracle(partner)
            .sql(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL")
            .fetchall()
        }
    )
    in_list = ", ".join(map(sql_text, visible)) or "NULL"
    sql = (
        f"SELECT count(*) FROM {table} WHERE CAST(CASE WHEN {column} IN ({in_list}) "
        f"THEN '0' ELSE {column} || '' END AS INTEGER) = 1"
    )
    result, error = attacker.ask(partner, sql)
    assert error is None, f"LEAK for {partner}: {error.code()}: {error.details()}"
    assert rows(result.table) == [(0,)]


def test_a_conditional_error_does_not_reveal_that_a_hidden_row_exists(attacker):
    running = attacker.running
    visible = {
        r[0] for r in running.oracle("immigration").sql("SELECT surname FROM offenders").fetchall()
    }
    hidden = sorted(
        {
            r[0]
            for r in raw(
                running,
                "immigration",
                "SELECT surname FROM raw.offenders WHERE source = 'CA-CSC' "
                "AND status = 'IN_CUSTODY' AND surname IS NOT NULL",
            )
        }
        - visible
    )
    sql = (
        "SELECT count(*) FROM offenders WHERE CASE WHEN surname = {} THEN "
        "CAST(surname || '' AS INTEGER) ELSE 0 END = 1"
    )
    answers = set()
    for name in (hidden[0], "Nobody-At-All"):
        result, error = attacker.ask("immigration", sql.format(sql_text(name)))
        answers.add(rows(result.table)[0][0] if error is None else error.code())
    assert answers == {0}


def _trailer(result: QueryResult) -> list[tuple[str, int, int]]:
    return sorted((s.source, s.rows, s.scans) for s in result.trailer.sources)


@pytest.mark.parametrize(
    ("partner", "column"),
    [
        ("immigration", "surname"),
        ("flagging_coordinator", "surname"),
        ("border_services", "surname"),
        ("police", "surname"),
        ("passport_canada", "surname"),
        ("revenue_quebec", "surname"),
    ],
)
def test_trailer_row_counts_do_not_depend_on_hidden_rows(attacker, partner, column):
    """Two queries with the same (empty) visible answer must look the same."""
    running = attacker.running
    visible = {
        r[0] for r in running.oracle(partner).sql(f"SELECT {column} FROM offenders").fetchall()
    }
    counts = raw(
        running,
        partner,
        f"SELECT {column}, count(*) FROM raw.offenders "
        f"WHERE {column} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1",
    )
    hidden = next(v for v, _ in counts if v not in visible)
    trailers = []
    for value in (hidden, "Nobody-At-All"):
        result, error = attacker.ask(
            partner, f"SELECT count(*) FROM offenders WHERE {column} = {sql_text(value)}"
        )
        assert error is None and rows(result.table) == [(0,)]
        trailers.append(_trailer(result))
    assert trailers[0] == trailers[1], f"trailer differs: {trailers}"


def test_explain_shows_no_value_the_role_masks(attacker):
    linked = victim_linked_fps(attacker.running)
    registration = attacker.running.policy.registry.partners["victim"].attributes
    plan = attacker.client("victim").explain("SELECT surname FROM offenders")
    assert linked and not [fps for fps in linked if fps in str(plan)]
    assert str(registration["victim_registration"]) not in str(plan)


def test_explain_never_shows_the_keyed_hash_key(attacker):
    running = attacker.running
    for partner in ("passport_canada", "border_services", "victim"):
        key = partner_key(running.workdir.mask_secret(), partner)
        block = key.ljust(64, b"\0")
        pads = [bytes(b ^ 0x36 for b in block).hex(), bytes(b ^ 0x5C for b in block).hex()]
        plan = attacker.client(partner).explain(
            "SELECT fps_number FROM offenders WHERE fps_number = 'x'"
        )
        text = str(plan).lower()
        assert "accord_keyed_hash" in text
        assert key.hex() not in text and not [p for p in pads if p in text]


@pytest.mark.parametrize(
    ("partner", "sql"),
    [
        ("crown_attorney", "SELECT address FROM offenders"),
        ("police", "SELECT * FROM alerts"),
        ("statistics", "SELECT surname FROM offenders"),
        ("operator", "SELECT count(*) FROM offenders"),
        ("victim", "SELECT fps_number FROM offenders WHERE source = 'ON' OR birth_date IS NULL"),
    ],
)
def test_explain_refuses_what_query_refuses(attacker, partner, sql):
    client = attacker.client(partner)
    with pytest.raises(grpc.RpcError) as on_query:
        client.query(sql)
    with pytest.raises(grpc.RpcError) as on_explain:
        client.explain(sql)
    assert on_query.value.code() == on_explain.value.code()
    assert on_query.value.code() in REFUSALS
    assert without_query_id(on_query.value.details() or "") == without_query_id(
        on_explain.value.details() or ""
    )


def test_cast_in_where_is_answered_or_refused_as_invalid(attacker):
    refused_or_oracle(
        attacker,
        "crown_attorney",
        "SELECT count(*) FROM offenders WHERE CAST(surname AS INTEGER) = 1",
    )


# --------------------------------------------------------------------------- statistics

STATS = "statistics"


def _persons(running: Running, table: str, where: str = "TRUE") -> int:
    persons: int = raw(
        running,
        STATS,
        f"SELECT count(DISTINCT coalesce(fps_number, source || ':' || "
        f"source_person_id)) FROM raw.{table} WHERE {where}",
    )[0][0]
    return persons


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT gender FROM offenders",
        "SELECT * FROM offenders",
        "SELECT DISTINCT gender FROM offenders",
        "SELECT gender, count(*) OVER () FROM offenders",
        "SELECT gender, count(*) FROM offenders GROUP BY gender HAVING gender = 'F'",
        "SELECT count(*) FROM (SELECT gender FROM offenders) t",
        "WITH t AS (SELECT gender FROM offenders) SELECT count(*) FROM t",
        "SELECT count(*) FROM offenders UNION SELECT count(*) FROM sentences",
        "SELECT count(*) FROM offenders WHERE gender IN (SELECT gender FROM offenders)",
        "SELECT (SELECT count(*) FROM offenders)",
        "SELECT min(birth_date) FROM offenders",
        "SELECT max(length_days) FROM sentences",
        "SELECT string_agg(gender, ',') FROM offenders",
        "SELECT array_agg(offence_code) FROM sentences",
        "SELECT median(length_days) FROM sentences",
        "SELECT any_value(gender) FROM offenders",
        "SELECT stddev(length_days) FROM sentences",
        "SELECT count_if(gender = 'F') FROM offenders",
        "SELECT first_value(gender) OVER () FROM offenders",
        "SELECT length_days, count(*) FROM sentences GROUP BY length_days",
        "SELECT upper(source), count(*) FROM offenders GROUP BY upper(source)",
        "SELECT upper(gender), count(*) FROM offenders GROUP BY upper(gender)",
        "SELECT upper(gender), count(*) FROM offenders GROUP BY ALL",
        "SELECT count(*) FROM sentences WHERE length_days > 1000",
        "SELECT count(*) FROM offenders WHERE lower(source) = 'bc'",
        "SELECT count(*) FROM offenders WHERE upper(gender) = 'F' AND source <> 'x'",
        "SELECT count(*) FROM offenders o JOIN sentences s ON s.length_days = 5",
        "SELECT count(*) FROM offenders HAVING gender = 'F'",
        "SELECT surname, count(*) FROM offenders GROUP BY surname",
        "SELECT count(DISTINCT fps_number) FROM offenders",
        "SELECT count(*) FROM offenders WHERE address IS NULL",
        "SELECT count(*), __accord_person FROM offenders",
        "SELECT gender, count(*), 100 AS __accord_persons FROM offenders GROUP BY gender",
        "SELECT count(*) FROM offenders ORDER BY surname",
    ],
)
def test_statistics_refuses_anything_but_dimension_aggregates(attacker, sql):
    refused(attacker, STATS, sql)


def _within(released: object, true: object, base: int, within: float | None = None) -> bool:
    """A released statistic: a multiple of ``base`` no further than ``within``
    (default: less than ``base``) from the truth (tests/disclosure_bounds.py)."""
    got, want = _norm(released), _norm(true)
    if got is None or want is None:
        return got is want  # a SUM over no values
    assert isinstance(got, int) and isinstance(want, int), (released, true)
    return got % base == 0 and abs(got - want) <= (base - 1 if within is None else within)


def test_statistics_suppresses_narrow_groups(attacker):
    running = attacker.running
    role = role_of(running, STATS)
    k, base = role.min_group_size, role.rounding_base
    dims = ["gender", "status", "supervising_jurisdiction", "security_level"]
    sql = (
        f"SELECT {', '.join(dims)}, count(*) AS n, count(DISTINCT status) AS d "
        f"FROM offenders GROUP BY {', '.join(dims)}"
    )
    result, error = attacker.ask(STATS, sql)
    assert error is None, error.details()
    got = rows(result.table)
    persons = raw(
        running,
        STATS,
        f"SELECT {', '.join(dims)}, count(*), count(DISTINCT coalesce(fps_number, "
        f"source || ':' || source_person_id)) AS p FROM raw.offenders "
        f"GROUP BY ALL",
    )
    by_group = {tuple(r[:4]): (r[4], r[5]) for r in persons}
    assert any(p < k for _, p in by_group.values()), "no narrow group: pick other dimensions"
    assert result.trailer.suppressed_groups == 0  # withheld groups are not counted for the caller
    for row in got:
        count, people = by_group[tuple(row[:4])]
        assert people >= k and _within(row[4], count, base, tolerance(role, "offenders", None, 2))
    assert {tuple(r[:4]) for r in got} == {g for g, (_, p) in by_group.items() if p >= k}


def test_statistics_suppression_counts_persons_not_rows(attacker):
    """A cell of many sentences held by few persons is still suppressed."""
    running = attacker.running
    role = role_of(running, STATS)
    k, base = role.min_group_size, role.rounding_base
    sql = (
        "SELECT offence_code, sentence_type, sentence_date, count(*) AS n, "
        "sum(length_days) AS total FROM sentences "
        "GROUP BY offence_code, sentence_type, sentence_date"
    )
    result, error = attacker.ask(STATS, sql)
    assert error is None, error.details()
    cells = raw(
        running,
        STATS,
        "SELECT offence_code, sentence_type, year(sentence_date), count(*), "
        "count(DISTINCT coalesce(fps_number, source || ':' || source_person_id)) "
        "FROM raw.sentences GROUP BY ALL",
    )
    by_cell = {tuple(r[:3]): (r[3], r[4]) for r in cells}
    assert any(rows_ >= k > people for rows_, people in by_cell.values()), (
        "the data holds no many-rows/few-persons cell; pick other dimensions"
    )
    got = rows(result.table)
    assert {tuple(r[:3]) for r in got} == {c for c, (_, p) in by_cell.items() if p >= k}
    for row in got:
        count, people = by_cell[tuple(row[:3])]
        assert people >= k and _within(row[3], count, base, tolerance(role, "sentences", None, 2))


def test_statistics_having_is_refused(attacker):
    """HAVING would test exact values before they are rounded (and answered
    differently for the one n that is the true count)."""
    for sql in [
        "SELECT gender, status, supervising_jurisdiction, count(*) FROM offenders "
        "GROUP BY gender, status, supervising_jurisdiction HAVING count(*) < 5",
        "SELECT offence_code, sentence_date, count(*) FROM sentences "
        "GROUP BY offence_code, sentence_date HAVING count(*) BETWEEN 1 AND 4",
    ]:
        refused(attacker, STATS, sql, "may not use HAVING")


def test_statistics_whole_table_and_dimension_filters_match_the_oracle(attacker):
    """Released values against the oracle's: the same groups, each count
    and sum rounded within its base, each average the released sum over the
    released count."""
    role = role_of(attacker.running, STATS)
    days = role.tables["sentences"].measures["length_days"]
    # (query, per column: its base or None for a dimension, its table, its
    # tolerance's measure, the query's statistics)
    cases: list[tuple[str, list[int | None]]] = [
        ("SELECT count(*) FROM offenders", [role.rounding_base]),
        ("SELECT gender, count(*) FROM offenders GROUP BY gender", [None, role.rounding_base]),
        (
            "SELECT status, count(*) FROM offenders WHERE gender = 'M' GROUP BY status",
            [None, role.rounding_base],
        ),
        (
            "SELECT sentence_type, count(length_days), sum(length_days) "
            "FROM sentences GROUP BY sentence_type",
            [None, role.rounding_base, days],
        ),
        (
            "SELECT count(*) FROM offenders WHERE birth_date BETWEEN 1970 AND 1979",
            [role.rounding_base],
        ),
    ]
    for sql, bases in cases:
        result, error = attacker.ask(STATS, sql)
        assert error is None, error.details()
        got = sorted(rows(result.table), key=repr)
        expected = sorted(attacker.running.oracle(STATS).sql(sql).fetchall(), key=repr)
        assert len(got) == len(expected), sql
        for mine, theirs in zip(got, expected, strict=True):
            for value, true, base in zip(mine, theirs, bases, strict=True):
                table = "sentences" if "sentences" in sql else "offenders"
                measure = "length_days" if base == days and "sum" in sql else None
                within = tolerance(role, table, measure, 2 if "sum" in sql else 1)
                assert value == true if base is None else _within(value, true, base, within), (
                    sql,
                    mine,
                )
    sql = (
        "SELECT sentence_type, count(length_days), sum(length_days), avg(length_days) "
        "FROM sentences GROUP BY sentence_type"
    )
    result, error = attacker.ask(STATS, sql)
    assert error is None, error.details()
    for _, count, total, mean in rows(result.table):
        # a SUM of no values stays NULL, while the noisy COUNT may not be 0
        assert mean == (None if total is None or not count else total / count)


def _narrow_cell(running: Running) -> tuple[str, str, str, int, int]:
    """A (gender, status, jurisdiction) cell of 1..k-1 persons: those three,
    its rows and its persons."""
    k = role_of(running, STATS).min_group_size
    cell: tuple[str, str, str, int, int] = raw(
        running,
        STATS,
        "SELECT gender, status, supervising_jurisdiction, count(*), "
        "count(DISTINCT coalesce(fps_number, source || ':' || source_person_id)) AS p "
        f"FROM raw.offenders WHERE gender IS NOT NULL AND supervising_jurisdiction "
        f"IS NOT NULL GROUP BY ALL HAVING p < {k} AND count(*) = p "
        "ORDER BY p, 1, 2, 3",
    )[0]
    return cell


def test_statistics_differencing_stays_within_the_rounding_bound(attacker):
    """Two broad counts (all offenders, and all but one narrow cell) once
    differed by exactly the narrow cell's count, which a direct query
    suppresses. Released counts are noisy and rounded: their difference is a
    multiple of the base within twice the tolerance of the cell
    (tests/integration/test_disclosure.py runs this against every
    aggregate-only role)."""
    running = attacker.running
    gender, status, juris, count, _ = _narrow_cell(running)
    cell = (
        f"coalesce(gender, '') = {sql_text(gender)} AND coalesce(status, '') = "
        f"{sql_text(status)} AND coalesce(supervising_jurisdiction, '') = {sql_text(juris)}"
    )
    direct, error = attacker.ask(STATS, f"SELECT count(*) FROM offenders WHERE {cell}")
    assert error is None and rows(direct.table) == [] and direct.trailer.suppressed_groups == 0
    everyone, _ = attacker.ask(STATS, "SELECT count(*) FROM offenders")
    but_cell, _ = attacker.ask(STATS, f"SELECT count(*) FROM offenders WHERE NOT ({cell})")
    difference = rows(everyone.table)[0][0] - rows(but_cell.table)[0][0]
    role = role_of(running, STATS)
    base = role.rounding_base
    assert difference % base == 0 and abs(difference - count) <= 2 * tolerance(role, "offenders")
    assert difference != count  # a count of 1..k-1 is no multiple of the base


def test_statistics_conditional_aggregate_cannot_count_a_narrow_cell(attacker):
    running = attacker.running
    gender, status, juris, _, _ = _narrow_cell(running)
    sql = (
        f"SELECT sum(CASE WHEN gender = {sql_text(gender)} AND status = {sql_text(status)} "
        f"AND supervising_jurisdiction = {sql_text(juris)} THEN 1 ELSE 0 END) FROM offenders"
    )
    result, error = attacker.ask(STATS, sql)
    if error is None:
        assert _norm(rows(result.table)[0][0]) not in range(
            1, role_of(running, STATS).min_group_size
        )


def test_statistics_join_cannot_carry_narrow_cells_past_suppression(attacker):
    running = attacker.running
    k = role_of(running, STATS).min_group_size
    sql = (
        "SELECT s.offence_code, s.sentence_date, count(*), avg(s.length_days) "
        "FROM offenders o JOIN sentences s ON s.sentence_type = s.sentence_type "
        "GROUP BY s.offence_code, s.sentence_date"
    )
    result, error = attacker.ask(STATS, sql)
    if error is not None:
        assert_clean_refusal(running, STATS, sql, error)
        return
    persons = {
        (r[0], r[1]): r[2]
        for r in raw(
            running,
            STATS,
            "SELECT offence_code, year(sentence_date), count(DISTINCT "
            "coalesce(fps_number, source || ':' || source_person_id)) "
            "FROM raw.sentences GROUP BY ALL",
        )
    }
    narrow = [r for r in rows(result.table) if persons[(r[0], r[1])] < k]
    assert not narrow, f"{len(narrow)} groups of fewer than {k} persons, e.g. {narrow[:3]}"


def test_statistics_cannot_filter_on_a_measure_inside_an_aggregate(attacker):
    refused(
        attacker, STATS, "SELECT sum(CASE WHEN length_days > 3000 THEN 1 ELSE 0 END) FROM sentences"
    )


def test_statistics_trailer_does_not_reveal_a_suppressed_cell(attacker):
    running = attacker.running
    gender, status, juris, _, _ = _narrow_cell(running)
    sql = (
        f"SELECT count(*) FROM offenders WHERE gender = {sql_text(gender)} AND "
        f"status = {sql_text(status)} AND supervising_jurisdiction = {sql_text(juris)}"
    )
    result, error = attacker.ask(STATS, sql)
    assert error is None and rows(result.table) == []
    assert sum(s.rows for s in result.trailer.sources) == 0


def test_statistics_alias_named_like_the_hidden_count(attacker):
    refused_or_oracle(attacker, STATS, "SELECT count(*) AS __accord_persons FROM offenders")


# ------------------------------------------------ answers or clear refusals, never INTERNAL


@pytest.mark.parametrize(
    ("partner", "sql", "refused"),
    [
        (
            "statistics",
            "SELECT status, count(*) FROM offenders WHERE status = 'NO_SUCH_STATUS' "
            "GROUP BY status",
            None,
        ),
        ("statistics", "SELECT status, count(*) FROM offenders GROUP BY ALL", None),
        ("police", "WITH offenders(a) AS (VALUES (1)) SELECT count(*) FROM aliases", None),
        ("police", "SELECT jaro_winkler_similarity(surname, 'Smith') FROM offenders", None),
        ("police", "SELECT any_value(surname) FROM offenders", None),
        ("police", "SELECT 1 AS x LIMIT (SELECT count(*) FROM offenders)", "LIMIT takes"),
        (
            "police",
            "SELECT 1 AS a UNION SELECT 2 ORDER BY (SELECT count(*) FROM offenders)",
            "subquery in the ORDER BY of a UNION",
        ),
        ("police", "SELECT surname, FROM offenders", "trailing comma"),
        ("police", "SELECT FROM offenders", "no output columns"),
    ],
)
def test_once_internal_now_answered_or_refused_clearly(attacker, partner, sql, refused):
    _, error = attacker.ask(partner, sql)
    if refused is None:
        assert error is None, error.details() if error else ""
    else:
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused in (error.details() or "")


def test_a_cte_named_like_a_table_gets_the_oracles_count(attacker, running):
    sql = "WITH offenders(a) AS (VALUES (1)) SELECT count(*) AS n FROM aliases"
    result, error = attacker.ask("police", sql)
    assert error is None and result is not None
    want = running.oracle("police").sql("SELECT count(*) FROM aliases").fetchall()[0][0]
    assert result.table.column("n").to_pylist() == [want]
