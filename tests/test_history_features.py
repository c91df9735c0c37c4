"""What a history's linkage may read: only the person-file columns the
caller's role sees in clear. A withheld column (not granted) or a masked one
is never a feature, whatever the row holds."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES
from broker.history.assemble import History
from broker.history.linkage import LinkageModel
from broker.history.request import admit_history
from broker.identity import Principal
from broker.policy.store import PolicySet

FEDERATION = load_federation(DEFAULT_FEDERATION)
POLICY = PolicySet.load(DEFAULT_POLICIES, FEDERATION)
ROW = {
    "source": "BC",
    "source_person_id": "CS1",
    "surname": "Côté",
    "given_names": "Jean Marc",
    "birth_date": dt.date(1979, 4, 7),
    "birth_place": "Québec, QC",
}


def history(partner: str, masked: dict[str, Any] | None = None) -> History:
    policy = POLICY
    if masked:
        role = POLICY.roles[POLICY.registry.partners[partner].role]
        offenders = role.tables["offenders"]
        offenders = replace(offenders, columns={**offenders.columns, **masked})
        role = replace(role, tables={**role.tables, "offenders": offenders})
        policy = replace(POLICY, roles={**POLICY.roles, role.name: role})
    pipeline = SimpleNamespace(policies=policy, federation=FEDERATION, limits=None)
    principal = Principal(POLICY.registry.partners[partner], "ab" * 32, 1, dt.datetime.now(dt.UTC))
    query = admit_history("1234567K", "", "", "", "", "", "", 0)
    return History(pipeline, LinkageModel.load(), principal, query, deadline=0.0)  # type: ignore[arg-type]


def test_a_withheld_column_is_no_feature():
    """The Crown is not granted birth_place: the row's value is ignored."""
    crown = history("crown_attorney")
    assert "birth_place" not in crown.offenders_clear
    assert crown.features("x", ROW)["birth_place_key"] is None
    assert crown.features("x", ROW)["surname_key"] == "cote"


def test_every_clear_column_is_a_feature():
    corrections = history("provincial_corrections")
    assert corrections.features("x", ROW)["birth_place_key"] == "quebec qc"
    assert corrections.linking


@pytest.mark.parametrize("column", ["surname", "given_names", "birth_date"])
def test_a_masked_column_is_no_feature_and_stops_linking_by_name(column):
    from broker.policy.masks import Mask

    masked = history(
        "crown_attorney", {column: Mask("keyed_hash" if column != "birth_date" else "year_only")}
    )
    assert column not in masked.offenders_clear and not masked.linking
    feats = masked.features("x", ROW)
    key = {"surname": "surname_key", "given_names": "given_key", "birth_date": "birth_date"}[column]
    assert feats[key] is None
