"""Each policy rule DOMAIN.md states, checked on the running federation.

One test per rule, named for it. Each asks the broker over real mTLS and
compares the answer with what the rule means, computed here in plain SQL
over the released raw rows (joins written out, not the policy language),
and first checks the data holds a case the rule excludes, so the test
could fail.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import grpc
import pytest

from tests.disclosure_bounds import tolerance
from tests.integration.conftest import rows
from tests.rewrite_oracle import city_of

if TYPE_CHECKING:
    from accord.client import BrokerClient
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

CURRENT = "('IN_CUSTODY', 'SUPERVISED', 'UAL')"


def client(running: Running, partner: str) -> BrokerClient:
    role = running.policy.roles[running.policy.registry.partners[partner].role]
    return running.client(
        partner,
        end_user="domain-rules-test",
        purpose=sorted(role.purposes)[0],
        case_ref="R-2026-0042" if role.case_reference_required else "",
    )


def raw(running: Running, sql: str) -> list[tuple[object, ...]]:
    """Rows of ``sql`` over ``raw.<table>``: every source's released rows."""
    return running.oracle("crown_attorney").sql(sql).fetchall()


def count(running: Running, sql: str) -> int:
    """The one number ``sql`` over the raw rows gives."""
    ((value,),) = raw(running, sql)
    assert isinstance(value, int)
    return value


def ask(running: Running, partner: str, sql: str) -> list[tuple[object, ...]]:
    with client(running, partner) as c:
        return rows(c.query(sql).table)


def refused(running: Running, partner: str, sql: str) -> grpc.RpcError:
    with client(running, partner) as c, pytest.raises(grpc.RpcError) as caught:
        c.query(sql)
    return caught.value


def catalog(running: Running, partner: str) -> dict[str, list[str]]:
    with client(running, partner) as c:
        return {t.name: [col.name for col in t.columns] for t in c.catalog().tables}


# -- which systems hold a file: `source` ------------------------------------------------------


def _source_is_withheld(running: Running, partner: str, *, answered: bool = True) -> None:
    """Naming ``source`` is refused as a denied column, ``*`` leaves it out, and the
    trailer gives no rows per system. ``answered``: the partner's view has rows
    (the contract agency's assigned people exist at the demo's seed only)."""
    for sql in (
        "SELECT source FROM offenders",
        "SELECT surname FROM offenders WHERE source = 'CA-CSC'",
        "SELECT count(*) FROM offenders GROUP BY source",
    ):
        error = refused(running, partner, sql)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (sql, error.details())
        assert "column source is not available" in (error.details() or "")
    with client(running, partner) as c:
        result = c.query("SELECT * FROM offenders")
    assert "source" not in result.table.column_names
    assert (result.table.num_rows > 0) == answered  # rows left; not counted per system:
    assert all(s.rows == 0 for s in result.trailer.sources), result.trailer.sources
    assert {s.state for s in result.trailer.sources} != set()  # which systems answered: still said


def test_contract_agency_gets_name_and_program_data_no_criminal_history_detail(running):
    """DOMAIN.md: contract agencies, "name and program data, no criminal history
    detail": not even which correctional systems hold a file (CA-CSC means a
    federal sentence of two years or more)."""
    assert catalog(running, "contract_agency") == {
        "offenders": ["fps_number", "surname", "given_names"]
    }
    _source_is_withheld(running, "contract_agency", answered=False)


def test_passport_sees_closed_list_nothing_else(running):
    """DOMAIN.md: Passport Canada, "surname, given name, gender, warrant expiry
    date, photograph, aliases, address, date and place of birth; nothing else"."""
    assert catalog(running, "passport_canada") == {
        "offenders": [
            "fps_number",  # a keyed hash: which rows are one person, not the number
            "surname",
            "given_names",
            "birth_date",
            "birth_place",
            "gender",
            "address",
            "photo_ref",
            "warrant_expiry_date",
        ],
        "aliases": ["fps_number", "alias_surname", "alias_given_names"],
    }
    _source_is_withheld(running, "passport_canada")


def test_corrections_keep_the_system_of_each_row(running):
    """DOMAIN.md: provincial corrections see "the full sentence and case picture
    across jurisdictions": which system holds each sentence is part of it."""
    got = ask(
        running, "provincial_corrections", "SELECT source, count(*) FROM sentences GROUP BY 1"
    )
    expected = raw(running, "SELECT source, count(*) FROM raw.sentences GROUP BY 1")
    assert sorted(got) == sorted(expected) and len(expected) > 1
    # A role granted `source` is told the rows each system gave, even where its
    # row filter reads a table it is not granted (border services: alerts).
    for partner, table in (
        ("provincial_corrections", "sentences"),
        ("border_services", "offenders"),
    ):
        with client(running, partner) as c:
            result = c.query(f"SELECT * FROM {table}")
        assert result.table.num_rows > 0
        assert sum(s.rows for s in result.trailer.sources) == result.table.num_rows, partner


# -- revenue agencies: currently incarcerated, custody dates -------------------------------------


def test_revenue_sees_custody_dates_of_the_current_incarceration_only(running):
    """DOMAIN.md: revenue agencies, "offenders currently incarcerated: identity and
    custody dates": the custody sentences still running, not every custody
    sentence the file ever held."""
    in_force = (
        "s.sentence_type = 'CUSTODY' AND o.status = 'IN_CUSTODY' "
        "AND o.source = s.source AND o.source_person_id = s.source_person_id"
    )
    ended = count(
        running,
        f"SELECT count(*) FROM raw.sentences s, raw.offenders o WHERE {in_force} "
        "AND s.warrant_expiry_date < current_date",
    )
    assert ended > 0  # the data holds ended custody sentences of files in custody
    expected = raw(
        running,
        "SELECT s.start_date, s.warrant_expiry_date FROM raw.sentences s, raw.offenders o "
        f"WHERE {in_force} AND (s.warrant_expiry_date IS NULL "
        "OR s.warrant_expiry_date >= current_date)",
    )
    got = ask(running, "revenue_federal", "SELECT start_date, warrant_expiry_date FROM sentences")
    assert Counter(got) == Counter(expected) and got
    quebec = ask(running, "revenue_quebec", "SELECT start_date, warrant_expiry_date FROM sentences")
    assert Counter(quebec) == Counter(
        r
        for r in raw(
            running,
            "SELECT s.start_date, s.warrant_expiry_date FROM raw.sentences s, raw.offenders o "
            f"WHERE {in_force} AND s.source = 'QC' AND (s.warrant_expiry_date IS NULL "
            "OR s.warrant_expiry_date >= current_date)",
        )
    )
    _source_is_withheld(running, "revenue_federal")


# -- border services: offenders not allowed to leave the country ---------------------------------


def test_border_services_see_only_offenders_not_allowed_to_leave(running):
    """DOMAIN.md: border services, "offenders not allowed to leave the country":
    a current file of a person whose NO_TRAVEL alert sits on a current file; an
    alert on an archived or warrant-expired file bound a sentence that is over."""
    same_person = (
        "(o.fps_number = a.fps_number OR (o.source = a.source "
        "AND o.source_person_id = a.source_person_id))"
    )
    bound = (
        "EXISTS (SELECT 1 FROM raw.alerts a JOIN raw.offenders f ON f.source = a.source "
        "AND f.source_person_id = a.source_person_id WHERE a.alert_type = 'NO_TRAVEL' "
        f"AND f.status IN {CURRENT} AND {same_person})"
    )
    only_lapsed = count(
        running,
        f"SELECT count(*) FROM raw.offenders o WHERE o.status IN {CURRENT} AND NOT {bound} "
        f"AND EXISTS (SELECT 1 FROM raw.alerts a WHERE a.alert_type = 'NO_TRAVEL' "
        f"AND {same_person})",
    )
    assert only_lapsed > 0  # someone's only NO_TRAVEL alerts are on files that ended
    columns = "surname, given_names, birth_date, gender, photo_ref, warrant_expiry_date"
    expected = raw(
        running,
        f"SELECT {columns} FROM raw.offenders o WHERE o.status IN {CURRENT} AND {bound}",
    )
    got = ask(running, "border_services", f"SELECT {columns} FROM offenders")
    assert Counter(got) == Counter(expected) and got


# -- victims: only the offender(s) who harmed that registered victim -----------------------------


def test_victim_sees_only_the_sentences_that_concern_that_victim(running):
    """DOMAIN.md: victims, "only the offender(s) who harmed that registered
    victim: name, offence, sentence start and length, release eligibility
    dates": the sentences victim_cases links to the registration, not the
    offender's other sentences."""
    registration = running.policy.registry.partners["victim"].attributes["victim_registration"]
    linked = (
        "FROM raw.sentences s JOIN raw.victim_cases v ON v.source = s.source "
        "AND v.source_person_id = s.source_person_id AND v.offence_code = s.offence_code "
        f"AND v.sentence_date = s.sentence_date WHERE s.source = 'CA-CSC' "
        f"AND v.victim_registration = '{registration}'"
    )
    expected = raw(running, f"SELECT s.offence_code, s.start_date, s.length_days {linked}")
    others = count(
        running,
        "SELECT count(*) FROM raw.sentences s WHERE s.source = 'CA-CSC' AND s.source_person_id "
        f"IN (SELECT s.source_person_id {linked}) AND NOT EXISTS (SELECT 1 FROM raw.victim_cases v "
        "WHERE v.source_person_id = s.source_person_id AND v.offence_code = s.offence_code "
        f"AND v.sentence_date = s.sentence_date AND v.victim_registration = '{registration}')",
    )
    assert expected and others > 0  # the offender has sentences that do not concern the victim
    got = ask(running, "victim", "SELECT offence_code, start_date, length_days FROM sentences")
    assert Counter(got) == Counter(expected)
    names = ask(running, "victim", "SELECT surname, given_names FROM offenders")
    assert Counter(names) == Counter(
        raw(
            running,
            "SELECT surname, given_names FROM raw.offenders o WHERE source = 'CA-CSC' "
            f"AND source_person_id IN (SELECT s.source_person_id {linked})",
        )
    )
    assert "victim_cases" not in catalog(running, "victim")
    _source_is_withheld(running, "victim")


# -- police: profile, aliases, release conditions -----------------------------------------------


def test_police_see_where_a_person_lives_as_the_city_only(running):
    """DOMAIN.md: police get the offender's profile; the policy keeps of the
    address the city (and province): no street, number or postal code."""
    got = dict(
        ((r[0], r[1]), r[2])
        for r in ask(running, "police", "SELECT source, source_person_id, address FROM offenders")
    )
    stored = dict(
        ((r[0], r[1]), r[2])
        for r in raw(running, "SELECT source, source_person_id, address FROM raw.offenders")
    )
    assert got and any(v is not None for v in got.values())
    for key, shown in got.items():
        assert shown == (None if stored[key] is None else city_of(str(stored[key]))), key
        assert shown is None or not any(ch.isdigit() for ch in shown), shown


def test_police_can_tell_whose_alias_or_release_a_row_is_without_an_fps_number(running):
    """DOMAIN.md: police get "aliases, release conditions" of the people they
    may see; a file without an FPS number is linked by its own file number
    (DOMAIN.md, Identifiers), so every such row names its file."""
    people = {
        (r[0], r[1])
        for r in ask(running, "police", "SELECT source, source_person_id FROM offenders")
    }
    for table in ("aliases", "releases"):
        loose = ask(
            running,
            "police",
            f"SELECT source, source_person_id FROM {table} WHERE fps_number IS NULL",
        )
        assert loose, table  # such rows exist in the data
        assert all((r[0], r[1]) in people for r in loose), table


# -- sex offender registries: released sex offenders -----------------------------------------


@pytest.mark.parametrize(
    ("partner", "where"),
    [
        ("sex_offender_registry_national", "TRUE"),
        ("sex_offender_registry_on", "(o.supervising_jurisdiction = 'ON' OR o.source = 'ON')"),
    ],
)
def test_sex_offender_registries_keep_registrants_whose_sentence_ended(running, partner, where):
    """DOMAIN.md: sex offender registries, "released sex offenders (Ontario:
    released in Ontario)": released includes UAL and an ended sentence, since
    the obligation to register outlasts the sentence."""
    flagged = (
        "EXISTS (SELECT 1 FROM raw.alerts a WHERE a.alert_type = 'SEX_OFFENDER' "
        "AND (a.fps_number = o.fps_number OR (a.source = o.source "
        "AND a.source_person_id = o.source_person_id)))"
    )
    released = "o.status IN ('SUPERVISED', 'UAL', 'WARRANT_EXPIRED')"
    expected = raw(
        running,
        f"SELECT o.surname, o.birth_date, o.status FROM raw.offenders o "
        f"WHERE {released} AND {where} AND {flagged}",
    )
    assert {r[2] for r in expected} >= {"WARRANT_EXPIRED"}
    got = ask(running, partner, "SELECT surname, birth_date, status FROM offenders")
    assert Counter(got) == Counter(expected)


# DOMAIN.md: statistics agency (CCJS) | annual statistics | aggregates only,
# never a row about one person; small groups suppressed. Counts by the system
# that holds the file are the first table of any annual corrections statistics.
def test_statistics_counts_by_the_system_that_holds_the_file(running):
    sql = "SELECT source, count(*) AS n FROM offenders GROUP BY source ORDER BY source"
    released: dict[object, int] = {r[0]: int(str(r[1])) for r in ask(running, "statistics", sql)}
    truth: dict[object, int] = {r[0]: int(str(r[1])) for r in raw(running, sql)}
    role = running.policy.roles["statistics"]
    bound = tolerance(role, "offenders")
    assert set(released) <= set(truth) and len(released) >= 4
    for source, n in released.items():
        assert abs(n - truth[source]) <= bound, (source, n, truth[source])
        assert n % role.rounding_base == 0
