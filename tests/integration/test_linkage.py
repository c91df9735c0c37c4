"""Every role links its child tables to people the same way, end to end.

- For every partner of every row-level role, the number of visible rows of
  each child table (aliases, sentences, releases, incidents, alerts) is what
  the independent oracle (``oracle.py``, which writes the linkage out itself)
  says.
- The roles whose child tables follow the offenders they see (DOMAIN.md:
  police aliases and release conditions, Passport aliases, a facility's
  releases, the registries' aliases and releases) see the children of every
  such file, with or without an FPS number: computed here from the raw
  generated rows, by FPS number in any system or the same file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests import linkage_oracle
from tests.integration.oracle import _bind_text, _raw_tables, raw_connection

if TYPE_CHECKING:
    from accord.client import BrokerClient
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

CHILD_TABLES = ("aliases", "sentences", "releases", "incidents", "alerts")
CASE_REF = "R-2026-0042"


def _partners(running: Running) -> list[str]:
    policy = running.policy
    return sorted(
        name
        for name, partner in policy.registry.partners.items()
        if not policy.roles[partner.role].aggregate_only
        and any(t in CHILD_TABLES for t in policy.roles[partner.role].tables)
    )


def _client(running: Running, partner: str) -> BrokerClient:
    role = running.policy.roles[running.policy.registry.partners[partner].role]
    return running.client(
        partner,
        end_user="linkage-test",
        purpose=sorted(role.purposes)[0],
        case_ref=CASE_REF if role.case_reference_required else "",
    )


def test_child_table_counts_are_the_oracles(running):
    counted: dict[tuple[str, str], tuple[int, int]] = {}
    for partner in _partners(running):
        role = running.policy.roles[running.policy.registry.partners[partner].role]
        with _client(running, partner) as client:
            for table in CHILD_TABLES:
                if table not in role.tables:
                    continue
                sql = f"SELECT count(*) FROM {table}"
                got = client.query(sql).table.column(0).to_pylist()[0]
                expected = running.oracle(partner).sql(sql).fetchall()[0][0]
                counted[(partner, table)] = (got, expected)
    wrong = {k: v for k, v in counted.items() if v[0] != v[1]}
    assert counted and not wrong, f"(broker, oracle) per (partner, table): {wrong}"
    assert any(v[0] for v in counted.values()), "no role sees any child row: the test is empty"


#: (partner, child table, the child's own condition): DOMAIN.md's "the
#: aliases / release conditions of the offenders it sees".
FOLLOWS_OFFENDERS = [
    ("police", "aliases", "TRUE"),
    ("police", "releases", "status = 'ACTIVE'"),
    ("toronto_police_service", "aliases", "TRUE"),
    ("toronto_police_service", "releases", "status = 'ACTIVE'"),
    ("passport_canada", "aliases", "TRUE"),
    ("residential_facility", "releases", "status = 'ACTIVE'"),
    ("ottawa_crf", "releases", "status = 'ACTIVE'"),
    ("sex_offender_registry_national", "aliases", "TRUE"),
    ("sex_offender_registry_national", "releases", "status = 'ACTIVE'"),
    ("sex_offender_registry_on", "aliases", "TRUE"),
    ("sex_offender_registry_on", "releases", "status = 'ACTIVE'"),
]


@pytest.mark.parametrize(("partner", "table", "own"), FOLLOWS_OFFENDERS)
def test_children_of_every_visible_file_are_visible(running, partner, table, own):
    """All rows (and those without an FPS number) of ``table`` that belong to
    a file the partner sees, by FPS number in any system or the same file."""
    registry = running.policy.registry
    role = running.policy.roles[registry.partners[partner].role]
    seen = role.tables["offenders"].row_filter or "TRUE"
    seen = linkage_oracle.expand(seen, "offenders", "o", running.federation)
    seen = _bind_text(_raw_tables(seen), registry.partners[partner])
    raw = raw_connection(running.federation, running.generated)
    expected = raw.sql(
        f"SELECT count(*), count(fps_number) FROM raw.{table} AS c WHERE {own} AND EXISTS ("
        f"SELECT 1 FROM raw.offenders AS o WHERE ({seen}) AND (o.fps_number = c.fps_number "
        "OR (o.source = c.source AND o.source_person_id = c.source_person_id)))"
    ).fetchall()[0]
    with _client(running, partner) as client:
        answer = client.query(f"SELECT count(*), count(fps_number) FROM {table}").table
    got = tuple(c.to_pylist()[0] for c in answer.columns)
    assert got == expected, (
        f"{partner} {table}: broker (rows, with FPS) {got}, children of visible files {expected}"
    )
