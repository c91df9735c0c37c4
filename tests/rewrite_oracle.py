"""Small synthetic source data and an independent oracle of a role's view.

The oracle reads the role's YAML and the partner registry itself and never
imports ``broker.policy``: a role's view of a table is the raw rows that its
row filter keeps (the filter run as written, over the raw tables, with
``principal.*`` replaced by text substitution), then each granted column
masked in Python. A policy rewrite is right when the caller's query over
these tables gives the same answer as the rewritten query over the raw ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from accord.federation import Federation
from tests import linkage_oracle

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIRS = (ROOT / "policies", ROOT / "tests" / "fixtures" / "policy")
#: The aggregate-only views' hidden person column (an interface the oracle matches).
PERSON = "__accord_person"

D = dt.date
# fps numbers the partners' attributes name (contract agency, conviction
# review, victim, officer's caseload), and others, so filters keep some rows.
PEOPLE = [
    "5466737H",
    "4963551S",
    "8893145B",
    "5320033V",
    "1405740Y",
    "2367260C",
    "4D",
    "9Z",
    "1000001A",
    "1000002B",
    "1000003C",
    None,
    None,
]
POOLS: dict[str, list[Any]] = {
    "surname": ["Côté", "O'Brien", "Li", "Smith", "Lévesque", "", None, "Gagné-Tremblay", "Ng"],
    "given_names": ["Marie-Ève", "Jean", "Al", None, "Wei", "Sam"],
    "birth_date": [D(1970, 1, 1), D(1999, 12, 31), D(2000, 1, 1), D(1985, 6, 15), None],
    "gender": ["M", "F", "X", None],
    "address": [
        "12 Main St, Winnipeg",
        "7 Rue Saint-Denis, Montréal",
        "Box 5",
        "",
        None,
        "1 Bay St, Toronto ON",
    ],
    "status": ["IN_CUSTODY", "SUPERVISED", "UAL", "WARRANT_EXPIRED", "ARCHIVED", None],
    "supervising_jurisdiction": ["BC", "ON", "QC", "CA", None],
    "assigned_facility": [
        "Winnipeg Community Residential Facility",
        "Ottawa Community Residential Facility",
        "Kent Institution",
        None,
    ],
    "security_level": ["MINIMUM", "MEDIUM", "MAXIMUM", "MULTI", None],
    "offence_code": ["A1", "B2", "C3", None],
    "court": ["BCPC Vancouver", "ONCJ Toronto", None],
    "length_days": [0, 1, 30, 365, 730, 3650, None],
    "sentence_type": ["CUSTODY", "CONDITIONAL", "PROBATION", "FINE", None],
    "release_type": ["DAY_PAROLE", "FULL_PAROLE", "STATUTORY_RELEASE", "PROBATION", None],
    "releases.status": ["ACTIVE", "SUSPENDED", "REVOKED", "COMPLETED", None],
    "incident_type": ["ASSAULT", "CONTRABAND", "SELF_HARM", "THREAT", None],
    "alert_type": ["HIGH_RISK", "SEX_OFFENDER", "NO_TRAVEL", "IMMIGRATION_HOLD", "VIOLENCE", None],
}
DATES = [D(2020, 1, 1), D(2023, 12, 31), D(2024, 2, 29), D(2025, 7, 1), None]
ARROW = {"VARCHAR": pa.string(), "DATE": pa.date32(), "BIGINT": pa.int64()}
ROWS_PER_SOURCE = 8


def source_data(federation: Federation, seed: int = 47) -> dict[tuple[str, str], pa.Table]:
    """(source, table) -> the logical rows that source releases: columns it
    does not hold or release are NULL, rows its release filter withholds
    are absent (as the adapter would send them). The seed is one where
    every row filter the fixtures meet keeps some rows and drops some (a test
    checks it)."""
    rng = random.Random(seed)
    data = {}
    for code, source in federation.sources.items():
        for name in source.tables:
            if name not in source.release or name == "victim_cases":
                continue
            logical = federation.tables[name]
            held = set(source.tables[name].columns) & source.released_columns(name)
            rows = []
            for i in range(ROWS_PER_SOURCE):
                row = _row(rng, name, logical.columns, i)
                rows.append({c: (v if c in held else None) for c, v in row.items()})
            table = pa.Table.from_pylist(rows, schema=logical.arrow_schema())
            data[(code, name)] = _release_filter(table, source.release[name].row_filter)
        if "victim_cases" in source.release and (code, "sentences") in data:
            data[(code, "victim_cases")] = _victim_cases(federation, data[(code, "sentences")])
    return data


def _victim_cases(federation: Federation, sentences: pa.Table) -> pa.Table:
    """Every other sentence of the source concerns a registered victim
    (``VR-00001`` the first two, ``VR-00002`` the next), so the victim's
    offender also has sentences that do not. Drawn apart from the seeded
    stream, which the other tables' rows keep as they were."""
    rows = [
        {
            "source_person_id": s["source_person_id"],
            "fps_number": s["fps_number"],
            "victim_registration": f"VR-{1 + i // 4:05d}",
            "offence_code": s["offence_code"],
            "sentence_date": s["sentence_date"],
        }
        for i, s in enumerate(sentences.to_pylist())
        if i % 2 == 0
    ]
    return pa.Table.from_pylist(rows, schema=federation.tables["victim_cases"].arrow_schema())


def _row(rng: random.Random, table: str, columns: dict[str, str], i: int) -> dict[str, Any]:
    person = rng.choice(PEOPLE)
    row: dict[str, Any] = {}
    for column, kind in columns.items():
        if column == "fps_number":
            row[column] = person
        elif column == "source_person_id":
            row[column] = None if i == 5 else f"P{PEOPLE.index(person) if person else 90 + i}"
        elif f"{table}.{column}" in POOLS:
            row[column] = rng.choice(POOLS[f"{table}.{column}"])
        elif column in POOLS:
            row[column] = rng.choice(POOLS[column])
        elif kind == "DATE":
            row[column] = rng.choice(DATES)
        elif kind == "BIGINT":
            row[column] = rng.choice([0, 7, 100, None])
        else:
            row[column] = rng.choice([f"{column}-{rng.randint(1, 3)}", "", None])
    return row


def _release_filter(table: pa.Table, row_filter: str | None) -> pa.Table:
    if not row_filter:
        return table
    con = duckdb.connect()
    con.register("t", table)
    return con.sql(f"SELECT * FROM t WHERE {row_filter}").to_arrow_table()


def raw_tables(
    federation: Federation, data: dict[tuple[str, str], pa.Table]
) -> dict[str, pa.Table]:
    """Logical table -> the union over its sources, with the ``source`` column."""
    tables = {}
    for name, logical in federation.tables.items():
        schema = logical.arrow_schema().append(pa.field("source", pa.string()))
        parts = [
            t.append_column("source", pa.array([code] * t.num_rows, pa.string()))
            for (code, n), t in sorted(data.items())
            if n == name
        ]
        tables[name] = pa.concat_tables(parts) if parts else schema.empty_table()
    return tables


def connect(tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET threads = 1")
    for name, table in tables.items():
        con.register(name, table)
    return con


@dataclass(frozen=True)
class OraclePartner:
    name: str
    role: str
    values: dict[str, Any]  # principal.<name> -> value (builtins and attributes)


def load_partner(name: str, attributes: dict[str, Any] | None = None) -> OraclePartner:
    for directory in POLICY_DIRS:
        partners = yaml.safe_load((directory / "partners.yaml").read_text())["partners"]
        if name in partners:
            spec = partners[name]
            values = {k: spec[k] for k in ("organization", "role", "jurisdiction")}
            values = {"name": name, **values, **spec.get("attributes", {}), **(attributes or {})}
            return OraclePartner(name, spec["role"], values)
    raise KeyError(name)


def load_role(name: str) -> dict[str, Any]:
    for directory in POLICY_DIRS:
        for path in sorted((directory / "roles").glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            if doc["role"] == name:
                return dict(doc)
    raise KeyError(name)


def substitute_principal(sql: str, partner: OraclePartner) -> str:
    """``principal.x`` -> its value as SQL text; a list only inside ``IN (...)``."""

    def literal(value: Any) -> str:
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float):
            return str(value)
        return "'" + str(value).replace("'", "''") + "'"

    def in_list(match: re.Match[str]) -> str:
        value = partner.values[match.group(1)]
        if not isinstance(value, list):
            return f"IN ({literal(value)})"
        if not value:
            return "IN (SELECT NULL WHERE FALSE)"  # an empty set: IN is false, even for NULL
        return "IN (" + ", ".join(literal(v) for v in value) + ")"

    def value(match: re.Match[str]) -> str:  # a list: its items, as in IN ('a', <list>)
        found = partner.values[match.group(1)]
        return ", ".join(map(literal, found)) if isinstance(found, list) else literal(found)

    sql = re.sub(r"\bIN\s*\(\s*principal\.(\w+)\s*\)", in_list, sql, flags=re.I)
    return re.sub(r"\bprincipal\.(\w+)", value, sql)


def oracle_tables(
    federation: Federation,
    raw: dict[str, pa.Table],
    partner: OraclePartner,
    key: bytes,
) -> dict[str, pa.Table]:
    """The role's view of every table it is granted, computed directly."""
    role = load_role(partner.role)
    con = connect(raw)
    views = {}
    for name, grant in (role.get("tables") or {}).items():
        released = set(federation.released_columns(name))
        logical = federation.tables[name]
        granted = logical.columns if grant["columns"] == "all" else grant["columns"]
        columns = [c for c in logical.columns if c in granted and c in released]
        if not columns:
            continue
        specs = {c: _mask_spec(grant["columns"][c]) for c in columns}
        extra = "".join(
            f', ({spec["expression"]}) AS "__expr_{c}"'
            for c, spec in specs.items()
            if spec["mask"] == "expression"
        )
        row_filter = grant.get("row_filter")
        if row_filter:
            row_filter = linkage_oracle.expand(row_filter, name, name, federation)
        where = f" WHERE {substitute_principal(row_filter, partner)}" if row_filter else ""
        rows = con.sql(f"SELECT *{extra} FROM {name}{where}").fetchall()
        names = [d[0] for d in con.sql(f"SELECT *{extra} FROM {name} LIMIT 0").description]
        fields, values = [], []
        for column in columns:
            spec, kind = specs[column], logical.columns[column]
            out_type = _masked_type(spec, kind)
            fields.append(pa.field(column, ARROW[out_type]))
            index = names.index(f"__expr_{column}" if spec["mask"] == "expression" else column)
            values.append([_mask(spec, r[index], key) for r in rows])
        if grant["columns"] == "all" or "source" in grant["columns"]:
            fields.append(pa.field("source", pa.string()))
            values.append([r[names.index("source")] for r in rows])
        if role.get("aggregate_only"):
            person, local = logical.person_key or "fps_number", names.index("source_person_id")
            fields.append(pa.field(PERSON, pa.string()))
            values.append(
                [_person(r[names.index(person)], r[names.index("source")], r[local]) for r in rows]
            )
        privacy = role.get("privacy")
        if privacy:
            values = _private_view(values, columns, grant, privacy["rows_per_person"][name])
        views[name] = pa.Table.from_arrays(
            [pa.array(v, f.type) for v, f in zip(values, fields, strict=True)],
            schema=pa.schema(fields),
        )
    return views


def _private_view(
    values: list[list[Any]], columns: list[str], grant: dict[str, Any], bound: int
) -> list[list[Any]]:
    """A differentially private role's view (``broker.policy.privacy``),
    computed directly: each measure clamped to [0, clamp], then each person
    (the last column) keeps its first ``bound`` rows in the order of every
    column ascending, NULLs last (DuckDB's default)."""
    values = [list(v) for v in values]
    for column, spec in (grant.get("measures") or {}).items():
        if isinstance(spec, dict) and column in columns:
            clamp, at = spec["clamp"], columns.index(column)
            values[at] = [None if v is None else min(max(v, 0), clamp) for v in values[at]]
    rows = sorted(
        zip(*values, strict=True), key=lambda r: [(v is None, v if v is not None else 0) for v in r]
    )
    kept: list[tuple[Any, ...]] = []
    taken: dict[Any, int] = {}
    for row in rows:
        person = row[-1]
        if taken.get(person, 0) < bound:
            taken[person] = taken.get(person, 0) + 1
            kept.append(row)
    return [list(column) for column in zip(*kept, strict=True)] if kept else [[] for _ in values]


def _person(key: str | None, source: str, local: str | None) -> str | None:
    if key is not None:
        return key
    return None if local is None else f"{source}:{local}"


def _mask_spec(spec: Any) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"mask": spec}
    return dict(spec)


def _masked_type(spec: dict[str, Any], kind: str) -> str:
    mask = spec["mask"]
    if mask == "year_only":
        return "BIGINT"
    if mask in ("keyed_hash", "partial", "city"):
        return "VARCHAR"
    return str(spec.get("type", kind))


#: What the broker's regular expression calls whitespace (RE2's ``\\s``).
_WS = " \t\n\f\r"
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGIT = frozenset("0123456789")


def city_of(address: str) -> str | None:
    """``..., <city> <XX> <A1A> <1A1>`` -> ``<city> <XX>``; any other shape None.
    Written with string methods, apart from the broker's regular expression."""
    head, comma, tail = address.rpartition(",")
    if not comma or "\n" in head:  # the pattern's ``.*`` stops at a line break
        return None
    text = tail.rstrip(_WS)
    for kinds in ((_DIGIT, _UPPER, _DIGIT), (_UPPER, _DIGIT, _UPPER)):  # 1A1, then A1A
        cut = max(text.rfind(c) for c in _WS)
        token, text = text[cut + 1 :], text[:cut].rstrip(_WS)
        if (
            cut < 0
            or len(token) != 3
            or not all(ch in k for ch, k in zip(token, kinds, strict=True))
        ):
            return None
    place = text.lstrip(_WS)
    province, before = place[-2:], place[:-2]
    if not (
        len(province) == 2
        and set(province) <= _UPPER
        and before[-1:] in tuple(_WS)
        and before.rstrip(_WS)
    ):
        return None
    return place


def _mask(spec: dict[str, Any], value: Any, key: bytes) -> Any:
    mask = spec["mask"]
    if mask in ("clear", "expression"):
        return value
    if value is None or mask == "null":
        return None
    if mask == "redact":
        return spec.get("value")
    if mask == "year_only":
        return value.year
    if mask == "keyed_hash":
        return hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()
    if mask == "city":
        return city_of(str(value))
    if mask == "partial":
        first, last = spec.get("keep_first", 0), spec.get("keep_last", 0)
        text = str(value)
        if len(text) <= first + last:
            return "*" * len(text)
        return text[:first] + "*" * (len(text) - first - last) + (text[-last:] if last else "")
    raise ValueError(f"oracle: unknown mask {mask!r}")
