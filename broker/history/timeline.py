"""The dated facts of a history, from the rows of each table as the role
sees them: one :class:`Fact` per date a row carries, with a one-line summary.

A column the role does not see is simply not in the row, and a summary
only names what the row holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

#: Per table: (date column, kind of fact) for each dated fact a row gives.
DATED: dict[str, tuple[tuple[str, str], ...]] = {
    "offenders": (("planned_release_date", "planned_release"),),
    "sentences": (
        ("sentence_date", "sentenced"),
        ("start_date", "sentence_start"),
        ("warrant_expiry_date", "warrant_expiry"),
    ),
    "releases": (("release_date", "release"), ("eligibility_date", "release_eligibility")),
    "incidents": (("occurred_on", "incident"),),
    "alerts": (("raised_on", "alert"),),
}
#: Sentences served in custody: their start is the custody's start.
CUSTODY_SENTENCES = frozenset({"CUSTODY", "INTERMITTENT"})


@dataclass(frozen=True)
class Fact:
    date: dt.date | None
    kind: str
    table: str
    summary: str


def facts(table: str, row: dict[str, Any]) -> list[Fact]:
    """The dated facts of one row (a dated column that is NULL or masked gives none,
    except the table's first, which is kept undated so no row is lost)."""
    out = []
    for i, (column, dated_kind) in enumerate(DATED.get(table, ())):
        if column not in row:
            continue
        value = row[column]
        date = value if isinstance(value, dt.date) else None
        if date is None and i > 0:
            continue
        kind = dated_kind
        if kind == "sentence_start" and row.get("sentence_type") in CUSTODY_SENTENCES:
            kind = "custody"
        out.append(Fact(date, kind, table, summary(table, kind, row)))
    if not out and table in DATED and table != "offenders":
        out.append(Fact(None, DATED[table][0][1], table, summary(table, DATED[table][0][1], row)))
    return out


def _join(*parts: object, sep: str = " ") -> str:
    return sep.join(str(p) for p in parts if p not in (None, ""))


def _sentence(kind: str, row: dict[str, Any]) -> str:
    g = row.get
    offence = _join(g("offence_code"), g("offence_description"))
    if kind == "warrant_expiry":
        return _join("warrant expiry:", offence)
    length = f"{g('length_days')} days" if g("length_days") is not None else "life"
    term = _join(length, g("sentence_type"))
    if kind in ("custody", "sentence_start"):
        return _join("sentence begins:", offence, term)
    court = f"({g('court')})" if g("court") else ""
    return _join(_join(offence, term, sep=": "), court)


def _release(kind: str, row: dict[str, Any]) -> str:
    g = row.get
    if kind == "release_eligibility":
        return _join("eligible for", g("release_type"))
    state = f"({g('status')})" if g("status") else ""
    conditions = f"conditions: {g('conditions')}" if g("conditions") else ""
    return _join(_join(g("release_type"), state), conditions, sep="; ")


def _incident(kind: str, row: dict[str, Any]) -> str:
    where = f"at {row['institution']}" if row.get("institution") else ""
    return _join(_join(row.get("incident_type"), where), row.get("summary"), sep=": ")


def _alert(kind: str, row: dict[str, Any]) -> str:
    return _join(row.get("alert_type"), row.get("notes"), sep=": ")


def _planned(kind: str, row: dict[str, Any]) -> str:
    return _join("planned release from", row.get("assigned_facility") or "custody")


_SUMMARIES = {
    "sentences": _sentence,
    "releases": _release,
    "incidents": _incident,
    "alerts": _alert,
    "offenders": _planned,
}


def summary(table: str, kind: str, row: dict[str, Any]) -> str:
    """One line naming what the row holds (only the columns the role sees)."""
    return _SUMMARIES[table](kind, row) if table in _SUMMARIES else ""


def text(value: Any) -> str | None:
    """A value as the response carries it: dates ISO, NULL absent."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
