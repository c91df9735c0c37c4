"""The federation configuration: logical model, sources, and their mappings.

One YAML file describes the whole federation, so adding a source system or a
logical table is a configuration change, not a code change::

    federation: accord-demo
    logical_model:
      offenders:
        person_key: fps_number
        columns: {fps_number: VARCHAR, birth_date: DATE, ...}
    sources:
      - code: BC
        system: CORNET
        jurisdiction: BC
        endpoints: ["127.0.0.1:50062"]
        backend: {kind: sqlite, path: data/bc.sqlite}
        tables:
          offenders:
            physical_table: CLIENT
            columns:
              fps_number: FPS_NUM                  # plain rename
              birth_date: {column: BIRTH_DT, date_format: "%d/%m/%Y"}
              status: {column: STAT_CD, codes: {CU: IN_CUSTODY, CO: SUPERVISED}}

A logical column a source does not list is stored under its own name (a
table without ``physical_table`` likewise), so a source whose schema is the
logical one lists only what differs; ``column: null`` says the system does
not hold that column, which then reads as NULL from that source.

Each source's ``release:`` section (required; ``{}`` shares nothing) is what
the jurisdiction shares at all, per table: columns, a row filter over the
logical columns, and ``follows: offenders`` to share only the rows of
persons whose file it shares (``Release``)::

    release:
      offenders: {columns: all, row_filter: "status <> 'WARRANT_EXPIRED'"}
      sentences: {columns: all, follows: offenders}
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pyarrow as pa
import yaml

from accord.errors import ConfigError
from accord.pki import BROKER_COMMON_NAME, adapter_identity, checked_name

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Logical column types and their Arrow equivalents.
LOGICAL_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}

#: Text date formats whose string order is the date order, so range
#: predicates on them can be pushed to the source as string comparisons.
ORDER_PRESERVING_DATE_FORMATS = frozenset({"%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"})

#: The backend kinds a source may name. The adapters' backend registry
#: (adapters.backends.registry.BACKENDS) declares each one; accord never
#: imports the adapters, so the kinds are listed here too, and a unit test
#: keeps the two lists equal.
BACKEND_KINDS = ("sqlite", "postgresql", "mysql")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE_CODE = re.compile(r"^[A-Z][A-Z0-9-]*$")


@dataclass(frozen=True)
class LogicalTable:
    name: str
    columns: dict[str, str]  # column -> logical type, in order
    person_key: str | None = None

    def arrow_schema(self, columns: list[str] | None = None) -> pa.Schema:
        names = list(self.columns) if columns is None else columns
        return pa.schema([(c, LOGICAL_TYPES[self.columns[c]]) for c in names])


@dataclass(frozen=True)
class ColumnMapping:
    """How one logical column is stored in one source system."""

    logical: str
    physical: str
    codes: dict[str, str] = field(default_factory=dict)  # physical code -> logical value
    date_format: str | None = None  # strftime format of a date stored as text

    @property
    def reverse_codes(self) -> dict[str, str]:
        return {logical: physical for physical, logical in self.codes.items()}


@dataclass(frozen=True)
class TableMapping:
    logical: str
    physical_table: str
    columns: dict[str, ColumnMapping]  # logical column -> mapping; absent = not held


@dataclass(frozen=True)
class Release:
    """What a jurisdiction shares of one table with the federation at all.

    ``follows`` names the table holding the person's file (``offenders``):
    a row is then shared only when its person has a row there that the
    source releases, so withholding a file withholds the person's records in
    every table that follows it. A person is the FPS number, else the
    source's own id (``source_person_id``) of a file without one, as in the
    broker's person identity.
    """

    table: str
    columns: frozenset[str]
    row_filter: str | None = None  # SQL over the logical columns
    follows: str | None = None  # the person file's table; None: rows stand alone


@dataclass(frozen=True)
class KeyDomain:
    """Which values of one column a source's share of a table holds: a range
    (``min``, ``max``, inclusive, either may be open) or a list of values.
    NULLs may be there too (no comparison matches them). The planner skips a
    source whose domain cannot satisfy a pushed predicate; a wrong domain
    loses rows, so the loader's split and the domains must agree."""

    column: str
    minimum: Any = None
    maximum: Any = None
    values: frozenset[Any] | None = None


@dataclass(frozen=True)
class Backend:
    kind: str
    path: str | None = None  # sqlite: file, relative to the work dir
    dsn: str | None = None  # server databases: a DSN, or env:NAME / file:PATH
    dialect: str = ""  # read from the file, unused: the adapters' registry gives the dialect

    def resolve_dsn(self) -> str:
        """The DSN, read from the environment (``env:NAME``) or a file (``file:PATH``).

        Secrets never sit in the committed configuration: a literal DSN is
        accepted only without a password (e.g. trust or socket auth).
        """
        if not self.dsn:
            raise ConfigError(f"a {self.kind} backend needs a dsn (env:NAME or file:PATH)")
        kind, _, ref = self.dsn.partition(":")
        if kind == "env":
            value = os.environ.get(ref)
            if not value:
                raise ConfigError(f"environment variable {ref} (the {self.kind} DSN) is not set")
            return value
        if kind == "file":
            try:
                return Path(ref).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the {self.kind} DSN from {ref}: {exc.strerror}"
                ) from exc
        return self.dsn


@dataclass(frozen=True)
class Source:
    code: str
    system: str
    jurisdiction: str
    description: str
    endpoints: tuple[str, ...]
    backend: Backend
    tables: dict[str, TableMapping]
    release: dict[str, Release] = field(default_factory=dict)  # absent table = not shared
    #: Per table, per column: the values this source's rows hold (``shards:``).
    shards: dict[str, dict[str, KeyDomain]] = field(default_factory=dict)
    #: The name its adapter's certificate must carry (DNS SAN): the broker
    #: dials the source under it, so another source's certificate is refused
    #: in the handshake, before a scan is sent.
    identity: str = ""

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(self, "identity", adapter_identity(self.code))

    def released_columns(self, table: str) -> frozenset[str]:
        agreement = self.release.get(table)
        return agreement.columns if agreement else frozenset()


@dataclass(frozen=True)
class Federation:
    name: str
    tables: dict[str, LogicalTable]
    sources: dict[str, Source]
    path: Path | None = None
    #: Client certificate CNs (organization: the federation's own) an adapter
    #: serves: the broker's. More than one during a migration to a new name.
    broker_identities: tuple[str, ...] = (BROKER_COMMON_NAME,)

    def source(self, code: str) -> Source:
        try:
            return self.sources[code]
        except KeyError:
            raise ConfigError(
                f"unknown source {code!r}; the federation has {', '.join(self.sources)}"
            ) from None

    def sources_serving(self, table: str) -> list[Source]:
        """Sources that hold ``table`` and release it to the federation."""
        return [s for s in self.sources.values() if table in s.tables and table in s.release]

    def released_columns(self, table: str) -> list[str]:
        """Columns of ``table`` that at least one source releases, in logical order."""
        released: set[str] = set()
        for source in self.sources_serving(table):
            released |= source.released_columns(table)
        return [c for c in self.tables[table].columns if c in released]

    def with_endpoints(self, endpoints: Mapping[str, str | tuple[str, ...]]) -> Federation:
        """A copy whose named sources listen on the given addresses (a tuple
        lists replicas of one adapter)."""
        sources = dict(self.sources)
        for code, address in endpoints.items():
            replicas = (address,) if isinstance(address, str) else tuple(address)
            sources[code] = replace(self.source(code), endpoints=replicas)
        return replace(self, sources=sources)


def load_federation(path: str | Path) -> Federation:
    """Reads and validates a federation file; errors name the file and the problem."""
    path = Path(path)
    try:
        return parse_federation(_read_with_extends(path), path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _read_with_extends(path: Path, depth: int = 0) -> Any:
    """Reads a federation file; ``extends: BASE`` plus ``overrides: {CODE: {...}}``
    reuse another file's sources, replacing top-level keys of named sources."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read federation config: {exc}") from exc
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    if depth > 3:
        raise ConfigError("'extends' nests more than three files deep")
    base = _read_with_extends(path.parent / str(raw["extends"]), depth + 1)
    overrides = _mapping(raw.get("overrides") or {}, "overrides")
    sources = _sequence(base.get("sources"), "sources")
    codes = {str(s.get("code")) for s in sources if isinstance(s, dict)}
    unknown = sorted(set(overrides) - codes)
    if unknown:
        raise ConfigError(f"overrides name unknown sources {unknown}")
    base["sources"] = [
        {**s, **_mapping(overrides.get(str(s.get("code")), {}), "override")} for s in sources
    ]
    for key in ("federation", "broker_identities"):  # the deployment's own, not the base's
        if key in raw:
            base[key] = raw[key]
    return base


def parse_federation(raw: Any, path: Path | None = None) -> Federation:
    doc = _mapping(raw, "the federation config")
    tables = {
        name: _parse_logical_table(name, spec)
        for name, spec in _mapping(doc.get("logical_model"), "logical_model").items()
    }
    sources: dict[str, Source] = {}
    for i, spec in enumerate(_sequence(doc.get("sources"), "sources")):
        source = _parse_source(_mapping(spec, f"sources[{i}]"), tables)
        if source.code in sources:
            raise ConfigError(f"source {source.code} is defined twice")
        sources[source.code] = source
    if not sources:
        raise ConfigError("the federation lists no sources")
    identities = tuple(
        checked_name(str(name), "broker identity")
        for name in _sequence(
            doc.get("broker_identities", [BROKER_COMMON_NAME]), "broker_identities"
        )
    )
    if not identities:
        raise ConfigError("broker_identities is empty: no adapter would serve the broker")
    return Federation(
        str(doc.get("federation", "accord")), tables, sources, path, broker_identities=identities
    )


def _parse_logical_table(name: str, spec: Any) -> LogicalTable:
    _identifier(name, "logical table")
    spec = _mapping(spec, f"logical_model.{name}")
    columns: dict[str, str] = {}
    for column, type_name in _mapping(spec.get("columns"), f"logical_model.{name}.columns").items():
        _identifier(column, f"column of {name}")
        if column == "source":
            raise ConfigError(f"logical_model.{name}: 'source' is added by the broker")
        if str(type_name).upper() not in LOGICAL_TYPES:
            raise ConfigError(
                f"logical_model.{name}.{column}: unknown type {type_name!r}; "
                f"use one of {', '.join(LOGICAL_TYPES)}"
            )
        columns[column] = str(type_name).upper()
    person_key = spec.get("person_key")
    if person_key is not None and person_key not in columns:
        raise ConfigError(f"logical_model.{name}: person_key {person_key!r} is not a column")
    return LogicalTable(name, columns, person_key)


_SOURCE_KEYS = frozenset(
    {
        "code",
        "system",
        "jurisdiction",
        "description",
        "endpoints",
        "backend",
        "tables",
        "release",
        "identity",
        "shards",
    }
)


def _parse_source(spec: dict[str, Any], tables: dict[str, LogicalTable]) -> Source:
    code = str(spec.get("code", ""))
    if not _SOURCE_CODE.match(code):
        raise ConfigError(f"source code {code!r} must be upper case letters, digits and '-'")
    where = f"source {code}"
    unknown = sorted(set(spec) - _SOURCE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    backend_spec = _mapping(spec.get("backend"), f"{where}.backend")
    kind = str(backend_spec.get("kind", ""))
    if kind not in BACKEND_KINDS:
        raise ConfigError(f"{where}: backend kind {kind!r}; use one of {sorted(BACKEND_KINDS)}")
    backend = Backend(
        kind=kind,
        path=backend_spec.get("path"),
        dsn=backend_spec.get("dsn"),
        dialect=str(backend_spec.get("dialect", "")),
    )
    if kind == "sqlite" and not backend.path:
        raise ConfigError(f"{where}: a sqlite backend needs a path")
    if (
        backend.dsn
        and not backend.dsn.startswith(("env:", "file:"))
        and urlsplit(backend.dsn).password
    ):
        raise ConfigError(
            f"{where}: the DSN holds a password; give it as env:NAME or "
            "file:PATH so no secret sits in the configuration"
        )
    mappings: dict[str, TableMapping] = {}
    for table, tspec in _mapping(spec.get("tables"), f"{where}.tables").items():
        if table not in tables:
            raise ConfigError(f"{where}: table {table!r} is not in the logical model")
        mappings[table] = _parse_table_mapping(
            tables[table], _mapping({} if tspec is None else tspec, f"{where}.{table}"), where
        )
    endpoints = tuple(str(e) for e in spec.get("endpoints") or ())
    if "release" not in spec:
        # Without an agreement a source shares nothing; say so rather than
        # let a forgotten or misspelt section switch a source off unnoticed.
        raise ConfigError(
            f"{where}: no release agreement (release section), so it would serve nothing; "
            "list what it shares, or write 'release: {}' if it shares nothing yet"
        )
    release = {
        table: _parse_release(tables[table], rspec, f"{where}.release.{table}")
        for table, rspec in _mapping(spec["release"] or {}, f"{where}.release").items()
        if _known_table(table, mappings, where)
    }
    for agreement in release.values():
        _check_follows(agreement, release, tables, mappings, f"{where}.release.{agreement.table}")
    shards = {}
    for table, cspec in _mapping(spec.get("shards") or {}, f"{where}.shards").items():
        if table not in mappings:
            raise ConfigError(f"{where}.shards: table {table!r} is not served by this source")
        shards[table] = _parse_shards(tables[table], cspec, f"{where}.shards.{table}")
    return Source(
        code=code,
        system=str(spec.get("system", code)),
        jurisdiction=str(spec.get("jurisdiction", code)),
        description=str(spec.get("description", "")),
        endpoints=endpoints,
        backend=backend,
        tables=mappings,
        release=release,
        identity=checked_name(str(spec.get("identity") or adapter_identity(code)), "identity"),
        shards=shards,
    )


def _parse_shards(table: LogicalTable, spec: Any, where: str) -> dict[str, KeyDomain]:
    """``{column: {min: V, max: V}}`` or ``{column: {values: [V, ...]}}``."""
    domains = {}
    for column, raw in _mapping(spec, where).items():
        at = f"{where}.{column}"
        if column not in table.columns:
            raise ConfigError(f"{at}: {column!r} is not a column of logical table {table.name}")
        dspec = _mapping(raw, at)
        unknown = sorted(set(dspec) - {"min", "max", "values"})
        if unknown:
            raise ConfigError(f"{at}: unknown keys {unknown}; use min and max, or values")
        kind = table.columns[column]
        if "values" in dspec:
            if {"min", "max"} & set(dspec):
                raise ConfigError(f"{at}: give min and max, or values, not both")
            listed = _sequence(dspec["values"], f"{at}.values")
            if not listed:
                raise ConfigError(f"{at}.values is empty: the source would hold no row")
            values = frozenset(_shard_value(v, kind, f"{at}.values") for v in listed)
            domains[column] = KeyDomain(column, values=values)
            continue
        if not {"min", "max"} & set(dspec):
            raise ConfigError(f"{at}: give min and/or max, or values")
        if kind == "BOOLEAN":
            raise ConfigError(f"{at}: a BOOLEAN column takes values, not a range")
        low, high = (
            _shard_value(dspec[k], kind, f"{at}.{k}") if dspec.get(k) is not None else None
            for k in ("min", "max")
        )
        if low is not None and high is not None and low > high:
            raise ConfigError(f"{at}: min {low!r} is above max {high!r}")
        domains[column] = KeyDomain(column, minimum=low, maximum=high)
    return domains


def _shard_value(value: Any, kind: str, where: str) -> Any:
    """A shard bound or value as the Python value of the column's logical type."""
    wrong = ConfigError(f"{where}: {value!r} is not a {kind} value")
    if kind == "BIGINT":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if kind == "DOUBLE":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        return float(value)  # compared as DuckDB compares a DOUBLE
    if kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise wrong
        return value
    if kind == "DATE":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise wrong from None
    if not isinstance(value, str):
        raise wrong
    return value


def _known_table(table: str, mappings: dict[str, TableMapping], where: str) -> bool:
    if table not in mappings:
        raise ConfigError(f"{where}.release: table {table!r} is not served by this source")
    return True


def _parse_release(table: LogicalTable, spec: Any, where: str) -> Release:
    """``all``, or ``{columns: all | [..], except: [..], row_filter: SQL}``."""
    if spec == "all":
        spec = {"columns": "all"}
    spec = _mapping(spec, where)
    unknown = set(spec) - {"columns", "except", "row_filter", "follows"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    columns_spec = spec.get("columns", "all")
    if columns_spec == "all":
        columns = set(table.columns)
    else:
        columns = {str(c) for c in _sequence(columns_spec, f"{where}.columns")}
    excluded = {str(c) for c in _sequence(spec.get("except") or [], f"{where}.except")}
    for column in columns | excluded:
        if column not in table.columns:
            raise ConfigError(f"{where}: column {column!r} is not in logical table {table.name}")
    row_filter = spec.get("row_filter")
    follows = spec.get("follows")
    return Release(
        table.name,
        frozenset(columns - excluded),
        str(row_filter) if row_filter else None,
        str(follows) if follows is not None else None,
    )


#: The columns that tell one person from another inside one source.
SOURCE_PERSON_ID = "source_person_id"


def person_columns(table: LogicalTable) -> tuple[str, str]:
    """(person key, source's own person id): the broker's person identity."""
    return table.person_key or "fps_number", SOURCE_PERSON_ID


def _check_follows(
    agreement: Release,
    release: dict[str, Release],
    tables: dict[str, LogicalTable],
    mappings: dict[str, TableMapping],
    where: str,
) -> None:
    """A table may follow the person file only where persons can be linked exactly."""
    followed = agreement.follows
    if followed is None:
        return
    if followed == agreement.table:
        raise ConfigError(f"{where}: a table cannot follow itself")
    if followed not in release:
        raise ConfigError(f"{where}: follows {followed!r}, which this source does not release")
    if release[followed].follows is not None:
        raise ConfigError(
            f"{where}: follows {followed!r}, which itself follows {release[followed].follows!r}; "
            "follow the person file directly"
        )
    for table in (agreement.table, followed):
        _check_person_columns(tables[table], mappings[table], where)
    linked = False
    own, other = (person_columns(tables[t]) for t in (agreement.table, followed))
    for mine, theirs in zip(own, other, strict=True):
        if tables[agreement.table].columns[mine] != tables[followed].columns[theirs]:
            raise ConfigError(f"{where}: {mine} and {followed}.{theirs} differ in type")
        if mine in mappings[agreement.table].columns and theirs in mappings[followed].columns:
            linked = True
    if not linked:
        raise ConfigError(
            f"{where}: this source holds no person column in both {agreement.table} and "
            f"{followed}, so their persons cannot be linked"
        )


def _check_person_columns(logical: LogicalTable, mapping: TableMapping, where: str) -> None:
    if logical.person_key is None:
        raise ConfigError(f"{where}: logical table {logical.name} has no person_key to link by")
    for column in person_columns(logical):
        if column not in logical.columns:
            raise ConfigError(f"{where}: logical table {logical.name} has no column {column!r}")
        held = mapping.columns.get(column)
        if held is not None and (held.codes or held.date_format):
            raise ConfigError(
                f"{where}: {logical.name}.{column} links persons, so it must be stored "
                "as it is (no codes, no date_format)"
            )


def _parse_table_mapping(table: LogicalTable, spec: dict[str, Any], where: str) -> TableMapping:
    where = f"{where}.{table.name}"
    physical_table = str(spec.get("physical_table", table.name))
    _identifier(physical_table, f"{where}.physical_table")
    listed = _mapping(spec.get("columns") or {}, f"{where}.columns")
    for logical in listed:
        if logical not in table.columns:
            raise ConfigError(f"{where}: column {logical!r} is not in logical table {table.name}")
    columns: dict[str, ColumnMapping] = {}
    for logical in table.columns:
        raw = listed.get(logical, logical)  # unlisted: stored under its own name
        if raw is None:
            continue  # explicitly not held by this system
        cspec = _mapping({"column": raw} if isinstance(raw, str) else raw, f"{where}.{logical}")
        physical = str(cspec.get("column", ""))
        _identifier(physical, f"{where}.{logical}.column")
        codes = {str(k): str(v) for k, v in (cspec.get("codes") or {}).items()}
        if len(set(codes.values())) != len(codes):
            raise ConfigError(f"{where}.{logical}: two physical codes map to one logical value")
        date_format = cspec.get("date_format")
        if date_format is not None and table.columns[logical] != "DATE":
            raise ConfigError(f"{where}.{logical}: date_format on a non-DATE column")
        if codes and table.columns[logical] != "VARCHAR":
            raise ConfigError(f"{where}.{logical}: codes on a non-VARCHAR column")
        columns[logical] = ColumnMapping(logical, physical, codes, date_format)
    return TableMapping(table.name, physical_table, columns)


def _identifier(name: str, what: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"{what}: {name!r} is not a plain SQL identifier")


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping")
    return value


def _sequence(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list")
    return value
