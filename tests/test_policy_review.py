"""``accord policy explain`` and ``accord policy diff``: a role's policy in
words, and what changed between two policies, in the same words."""

from __future__ import annotations

import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from accord.catalog import SOURCE_COLUMN
from accord.federation import load_federation
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES
from app.cli import main
from broker.policy.review import diff_policies, explain_role
from broker.policy.store import PolicySet

if TYPE_CHECKING:
    from pathlib import Path

FEDERATION = load_federation(DEFAULT_FEDERATION)
POLICY = PolicySet.load(DEFAULT_POLICIES, FEDERATION)


@pytest.mark.parametrize("role", sorted(POLICY.roles))
def test_explain_states_every_column_of_every_granted_table_once(role):
    """The review leaves nothing out: each logical column and ``source`` is in
    the clear, masked or hidden, said exactly once per granted table."""
    explanation = explain_role(POLICY, role, FEDERATION)
    for table in POLICY.roles[role].tables:
        facts = [f for f in explanation.facts[table] if f.startswith("Column ")]
        named = [f.split(":")[0].removeprefix("Column ") for f in facts]
        assert sorted(named) == sorted([*FEDERATION.tables[table].columns, SOURCE_COLUMN])
    denied = [t for t in FEDERATION.tables if t not in POLICY.roles[role].tables]
    for table in denied:
        assert f"Table {table}: not granted (absent)." in explanation.facts["role"]


def test_explain_says_rows_masks_hidden_purposes_and_case_reference():
    police = "\n".join(explain_role(POLICY, "police", FEDERATION).lines())
    assert "Column address: the city and province only" in police
    assert "the partner's jurisdiction" in police  # principal.jurisdiction in words
    assert "Rows (SQL): (status = 'SUPERVISED'" in police  # and the filter as written
    assert "Purposes it may declare: investigation" in police
    assert "No case reference is required." in police
    crown = "\n".join(explain_role(POLICY, "crown_attorney", FEDERATION).lines())
    assert "A case reference is required on every query." in crown
    passport = explain_role(POLICY, "passport_canada", FEDERATION)
    assert "Column source: hidden (absent)." in passport.facts["offenders"]
    stats = "\n".join(explain_role(POLICY, "statistics", FEDERATION).lines())
    assert "Aggregates only" in stats and "May group and filter by" in stats


def test_diff_of_a_policy_with_itself_is_empty():
    assert diff_policies(POLICY, POLICY, FEDERATION) == []


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(DEFAULT_POLICIES, target)
    return target


def test_diff_names_exactly_the_column_that_changed(tmp_path):
    changed = _copy(tmp_path)
    path = changed / "roles" / "police.yaml"
    text = path.read_text()
    assert "address: city" in text
    path.write_text(text.replace("address: city", "address: {mask: partial, keep_last: 8}"))
    diff = diff_policies(POLICY, PolicySet.load(changed, FEDERATION), FEDERATION)
    assert diff == [
        "Role police: changed",
        "  - [offenders] Column address: the city and province only (street, number and "
        "postal code hidden).",
        "  + [offenders] Column address: the first 0 and last 8 characters, the rest starred.",
    ]


def test_diff_says_a_column_granted_and_a_role_removed(tmp_path):
    changed = _copy(tmp_path)
    path = changed / "roles" / "contract_agency.yaml"
    path.write_text(
        path.read_text().replace("fps_number: clear", "fps_number: clear\n      source: clear")
    )
    diff = diff_policies(POLICY, PolicySet.load(changed, FEDERATION), FEDERATION)
    assert "  - [offenders] Column source: hidden (absent)." in diff
    assert "  + [offenders] Column source: in the clear." in diff
    fewer = PolicySet(POLICY.registry, {**POLICY.roles}, POLICY.purposes)
    del fewer.roles["operator"]
    assert "Role operator: removed" in "\n".join(diff_policies(POLICY, fewer, FEDERATION))


def test_cli_explain_and_diff(tmp_path, capsys):
    assert main(["policy", "explain", "victim"]) == 0
    out = capsys.readouterr().out
    assert "the same sentence (same file, offence code and sentence date)" in out
    assert main(["policy", "explain", "nobody"]) == 2
    assert "no role 'nobody'" in capsys.readouterr().err
    changed = _copy(tmp_path)
    path = changed / "roles" / "victim.yaml"
    path.write_text(path.read_text().replace("      length_days: clear\n", ""))
    assert (
        main(["policy", "diff", "--policies", str(changed), "--against", str(DEFAULT_POLICIES)])
        == 0
    )
    out = capsys.readouterr().out
    assert "  + [sentences] Column length_days: hidden (absent)." in out


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_cli_diff_against_a_git_ref(capsys):
    inside = subprocess.run(
        ["git", "-C", str(DEFAULT_POLICIES), "rev-parse", "HEAD"],
        capture_output=True,
        check=False,
    )
    if inside.returncode != 0:
        pytest.skip("the policies are not in a git checkout")
    assert main(["policy", "diff", "--against", "HEAD"]) == 0
    assert capsys.readouterr().out  # "no change against HEAD", or the uncommitted changes
    assert main(["policy", "diff", "--against", "no-such-ref-anywhere"]) == 2
    assert "cannot read the policy at" in capsys.readouterr().err
