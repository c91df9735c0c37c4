"""A role's policy in words a privacy officer can check against the law.

``explain_role`` says, table by table, which rows the role sees (its row
filter in words, with the SQL beside it), which columns in the clear, which
masked and how, which hidden; then its purposes, the case reference rule,
the aggregate rules and the partners holding it. ``diff_policies`` says
what changed between two policies in the same sentences (``accord policy
explain ROLE`` and ``accord policy diff``).

>>> import sqlglot
>>> in_words(sqlglot.parse_one("status IN ('UAL', 'SUPERVISED') AND source = 'BC'"))
"status is one of 'UAL', 'SUPERVISED' and the row comes from system 'BC'"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from accord.catalog import SOURCE_COLUMN
from broker.policy.linkage import FILE, PERSON, SENTENCE

if TYPE_CHECKING:
    from accord.federation import Federation
    from broker.policy.masks import Mask
    from broker.policy.model import Role, TableGrant
    from broker.policy.store import PolicySet


@dataclass
class Explanation:
    """One role's policy in sentences, by section (``role`` or a table's name);
    ``facts``: the same, one column a sentence, for comparing two policies."""

    role: str
    sections: dict[str, list[str]] = field(default_factory=dict)
    facts: dict[str, list[str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"Role {self.role}"]
        for section, sentences in self.sections.items():
            out.append("" if section == "role" else f"\n  Table {section}")
            out += [f"    {s}" if section != "role" else f"  {s}" for s in sentences]
        return out


def explain_role(policy: PolicySet, role_name: str, federation: Federation) -> Explanation:
    """What ``role_name`` sees, in words (the role must exist in ``policy``)."""
    role = policy.roles[role_name]
    explanation = Explanation(role.name)
    explanation.sections["role"] = _role_sentences(role, policy)
    denied = [t for t in federation.tables if t not in role.tables]
    explanation.facts["role"] = [
        *explanation.sections["role"],
        *(f"Table {t}: not granted (absent)." for t in denied),
    ]
    if denied:
        explanation.sections["role"].append(f"Tables not granted (absent): {', '.join(denied)}.")
    for table in federation.tables:
        if table in role.tables:
            lines, facts = _table_sentences(role, table, federation)
            explanation.sections[table] = lines
            explanation.facts[table] = facts
    return explanation


def diff_policies(
    old: PolicySet, new: PolicySet, federation: Federation, old_federation: Federation | None = None
) -> list[str]:
    """What changed from ``old`` to ``new``, role by role, as ``- `` (no longer
    so) and ``+ `` (now so) sentences; empty when nothing a partner sees changed."""
    out: list[str] = []
    before_federation = old_federation or federation
    for name in sorted(set(old.roles) | set(new.roles)):
        if name not in new.roles:
            out.append(f"Role {name}: removed (its partners can no longer be admitted)")
            continue
        after = explain_role(new, name, federation).facts
        if name not in old.roles:
            out.append(f"Role {name}: new")
            out += [f"  + [{s}] {line}" for s, lines in after.items() for line in lines]
            continue
        before = explain_role(old, name, before_federation).facts
        changes = []
        for section in [*after, *(s for s in before if s not in after)]:
            was, now = before.get(section, []), after.get(section, [])
            changes += [f"  - [{section}] {line}" for line in was if line not in now]
            changes += [f"  + [{section}] {line}" for line in now if line not in was]
        if changes:
            out.append(f"Role {name}: changed")
            out += changes
    return out


# -- sentences -----------------------------------------------------------------------------------


def _role_sentences(role: Role, policy: PolicySet) -> list[str]:
    lines = [role.description] if role.description else []
    purposes = [f"{p} ({policy.purposes.get(p, 'undeclared')})" for p in sorted(role.purposes)]
    lines.append(f"Purposes it may declare: {'; '.join(purposes) or 'none'}.")
    lines.append(
        "A case reference is required on every query."
        if role.case_reference_required
        else "No case reference is required."
    )
    if role.aggregate_only:
        lines.append(
            "Aggregates only, never a row about one person; a group of fewer than "
            f"{role.min_group_size} distinct people is suppressed."
        )
    partners = [p for p in policy.registry.partners.values() if p.role == role.name]
    for partner in sorted(partners, key=lambda p: p.name):
        attributes = ", ".join(
            f"{k} ({len(v)} values)" if isinstance(v, list) else f"{k} = {v!r}"
            for k, v in sorted(partner.attributes.items())
        )
        lines.append(
            f"Partner {partner.name}: {partner.organization}, jurisdiction "
            f"{partner.jurisdiction}" + (f"; attributes: {attributes}" if attributes else "")
        )
    return lines


def _table_sentences(role: Role, table: str, federation: Federation) -> tuple[list[str], list[str]]:
    """(sentences to read, one fact per column to compare) about one table."""
    grant = role.tables[table]
    released = federation.released_columns(table)
    if not released:
        nothing = ["Granted, but no source releases this table: the role sees nothing of it."]
        return nothing, nothing
    lines = []
    if grant.row_filter:
        tree = sqlglot.parse_one(grant.row_filter, read="duckdb")
        lines.append(f"Rows: only those where {in_words(tree)}.")
        lines.append(f"Rows (SQL): {' '.join(grant.row_filter.split())}")
    else:
        lines.append("Rows: every row every source releases (no row filter).")
    clear = [c for c in released if c in grant.columns and grant.columns[c] is None]
    if SOURCE_COLUMN in grant.columns:
        clear.append(f"{SOURCE_COLUMN} (the system holding the row)")
    lines.append(f"Columns in the clear: {', '.join(clear) or 'none'}.")
    for column in released:
        mask = grant.columns.get(column)
        if column in grant.columns and mask is not None:
            lines.append(f"Column {column}: {mask_in_words(mask)}.")
    hidden = [c for c in federation.tables[table].columns if c not in grant.columns]
    if SOURCE_COLUMN not in grant.columns:
        hidden.append(f"{SOURCE_COLUMN} (which system holds the row)")
    lines.append(f"Columns hidden (absent): {', '.join(hidden) or 'none'}.")
    unreleased = [c for c in grant.columns if c != SOURCE_COLUMN and c not in released]
    if unreleased:
        lines.append(f"Granted but released by no source: {', '.join(unreleased)}.")
    if role.aggregate_only:
        dims = ", ".join(sorted(grant.dimensions)) or "none"
        lines.append(f"May group and filter by: {dims}; other columns only inside aggregates.")
    facts = [line for line in lines if line.startswith(("Rows", "May group", "Granted but"))]
    return lines, facts + _column_facts(grant, [*federation.tables[table].columns, SOURCE_COLUMN])


def _column_facts(grant: TableGrant, columns: list[str]) -> list[str]:
    facts = []
    for column in columns:
        mask = grant.columns.get(column)
        if column not in grant.columns:
            facts.append(f"Column {column}: hidden (absent).")
        elif mask is None:
            facts.append(f"Column {column}: in the clear.")
        else:
            facts.append(f"Column {column}: {mask_in_words(mask)}.")
    return facts


def mask_in_words(mask: Mask) -> str:
    """How a masked column is shown.

    >>> from broker.policy.masks import Mask
    >>> mask_in_words(Mask("partial", keep_first=1, keep_last=2))
    'the first 1 and last 2 characters, the rest starred'
    """
    kind = mask.kind
    if kind == "partial":
        return f"the first {mask.keep_first} and last {mask.keep_last} characters, the rest starred"
    if kind == "redact":
        return "always empty" if mask.value is None else f"shown as {mask.value!r} when present"
    if kind == "expression":
        return f"computed as {mask.expression}"
    return {
        "null": "always empty",
        "year_only": "the year only",
        "keyed_hash": "a pseudonym (keyed hash, different for each partner), never the value",
        "city": "the city and province only (street, number and postal code hidden)",
    }.get(kind, kind)


# -- row filters in words ------------------------------------------------------------------------

_LINKS = {
    PERSON: "the same person (the same FPS number in any system, else the same file)",
    FILE: "the same file (same system, same file number)",
    SENTENCE: "the same sentence (same file, offence code and sentence date)",
}
_COMPARISONS: dict[type[exp.Expr], tuple[str, str]] = {  # (of dates, of anything else)
    exp.EQ: ("is", "is"),
    exp.NEQ: ("is not", "is not"),
    exp.LT: ("is before", "is less than"),
    exp.LTE: ("is on or before", "is at most"),
    exp.GT: ("is after", "is more than"),
    exp.GTE: ("is on or after", "is at least"),
}


def in_words(node: exp.Expr) -> str:
    """A row filter read aloud; parts with no wording stay SQL."""
    if isinstance(node, exp.Paren):
        return in_words(node.this)
    if isinstance(node, exp.And):
        return " and ".join(_grouped(p, exp.Or) for p in node.flatten())
    if isinstance(node, exp.Or):
        return " or ".join(_grouped(p, exp.And) for p in node.flatten())
    if isinstance(node, exp.Not):
        inner = node.this.unnest()
        if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
            return f"{_term(inner.this)} is given"
        return f"not ({in_words(inner)})"
    return _predicate(node)


def _predicate(node: exp.Expr) -> str:
    if isinstance(node, exp.In):
        return _in_words(node)
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return f"{_term(node.this)} is empty"
    if isinstance(node, exp.Binary) and type(node) in _COMPARISONS:
        left, right = node.this, node.expression
        if isinstance(left, exp.Column) and left.name == SOURCE_COLUMN and isinstance(node, exp.EQ):
            return f"the row comes from system {_term(right)}"
        dated = any(isinstance(side, (exp.CurrentDate, exp.Cast)) for side in (left, right))
        return f"{_term(left)} {_COMPARISONS[type(node)][0 if dated else 1]} {_term(right)}"
    return node.sql(dialect="duckdb")


def _grouped(node: exp.Expr, other: type[exp.Expr]) -> str:
    inner = node.this if isinstance(node, exp.Paren) else node
    text = in_words(inner)
    return f"({text})" if isinstance(inner, other) else text


def _in_words(node: exp.In) -> str:
    query = node.args.get("query")
    subquery = query.this if isinstance(query, exp.Subquery) else query
    key = node.this.name if isinstance(node.this, exp.Column) else None
    if isinstance(subquery, exp.Select) and key in _LINKS:
        source = subquery.args["from_"].this
        where = subquery.args.get("where")
        condition = f" where {in_words(where.this)}" if where is not None else ""
        return f"{_LINKS[key]} has a row in {source.name}{condition}"
    if subquery is not None:
        return f"{_term(node.this)} is among ({subquery.sql(dialect='duckdb')})"
    values = ", ".join(_term(v) for v in node.expressions)
    return f"{_term(node.this)} is one of {values}"


def _term(node: exp.Expr) -> str:
    if isinstance(node, exp.Column) and node.table == "principal":
        return f"the partner's {node.name}"
    if isinstance(node, exp.CurrentDate):
        return "today"
    if isinstance(node, exp.Column) and node.name == SOURCE_COLUMN:
        return "the row's system"
    return node.sql(dialect="duckdb")
