"""A source's release agreement as conditions its own database applies.

A table's own ``row_filter`` translates conjunct by conjunct
(``adapters.translate.translate_release_filter``). A table whose release
``follows`` the person file gets a semi-join on that source's physical
person table: the row's person must have a file the agreement releases. A
person is the FPS number, else, on a row without one, the source's own
person id matched among files without an FPS number (the broker's person
identity, ``broker.policy.rewrite.person_identity``, inside one source)::

    ROW.FPS IN (SELECT f.FPS FROM FILE AS f WHERE <file released> AND f.FPS IS NOT NULL)
    OR (ROW.FPS IS NULL AND ROW.ID IN (SELECT f.ID FROM FILE AS f
                                       WHERE <file released> AND f.FPS IS NULL ...))

Uncorrelated IN rather than a correlated EXISTS: each subquery runs once,
and no database caches a correlated subquery's answer per outer value
compared under the column's collation (MariaDB's subquery cache answers
'x1' and 'X1 ' with the cached answer for 'X1'). Text keys compare byte for
byte (``DialectRules.byte_equality``): a case-insensitive collation would
otherwise let a withheld person's rows through on a released person whose
FPS number differs only in case or trailing blanks.

Every part runs in the database exactly, or the adapter refuses to start
(``check_release``): nothing the agreement withholds ever reaches the broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

from accord.errors import ConfigError
from accord.federation import person_columns
from adapters.backends.registry import backend_type
from adapters.dialects import RULES
from adapters.translate import translate_release_filter

if TYPE_CHECKING:
    from accord.federation import Federation, Source
    from adapters.dialects import DialectRules

#: The alias of the person file inside the semi-join.
FILE_ALIAS = "__accord_file"


def release_conditions(
    federation: Federation, source: Source, table: str, dialect: str
) -> tuple[list[exp.Expr], list[Any]]:
    """Physical conditions (with parameters) beyond the table's own filter:
    the person link of a table that follows the person file; none otherwise."""
    release = source.release[table]
    if release.follows is None:
        return [], []
    where = f"source {source.code} release of {table} (follows {release.follows})"
    try:
        return _person_link(federation, source, table, release.follows, RULES[dialect])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def release_problems(federation: Federation, source: Source, dialect: str) -> list[str]:
    """Each part of the agreement this source's database cannot apply exactly,
    naming the source, the table and the part."""
    rules = RULES[dialect]
    problems: list[str] = []
    for table, release in source.release.items():
        try:
            translate_release_filter(
                federation.tables[table], source.tables[table], release.row_filter, rules
            )
            release_conditions(federation, source, table, dialect)
        except ConfigError as exc:
            text = str(exc)
            prefix = f"source {source.code} release of {table}"
            problems.append(text if text.startswith(prefix) else f"{prefix}: {text}")
    return problems


def check_release(federation: Federation, source: Source, dialect: str) -> None:
    """Refuses (ConfigError) an agreement this source's database cannot apply
    exactly; run before serving."""
    problems = release_problems(federation, source, dialect)
    if problems:
        raise ConfigError("; ".join(problems))


def check_federation(federation: Federation) -> tuple[list[str], list[str]]:
    """(problems, warnings) of every source's agreement, as ``accord policy
    check`` reports them: an agreement its database cannot apply (the adapter
    would not start), and a source that releases nothing at all."""
    problems: list[str] = []
    warnings: list[str] = []
    for source in federation.sources.values():
        if not source.release:
            warnings.append(
                f"source {source.code} releases nothing: its adapter refuses every scan"
            )
        problems += release_problems(federation, source, backend_type(source.backend.kind).dialect)
    return problems, warnings


def _person_link(
    federation: Federation, source: Source, table: str, followed: str, rules: DialectRules
) -> tuple[list[exp.Expr], list[Any]]:
    own_mapping, file_mapping = source.tables[table], source.tables[followed]
    if own_mapping.physical_table == file_mapping.physical_table:
        raise ConfigError(f"{table} and {followed} share the physical table; nothing to link")
    filter_sql, params = translate_release_filter(
        federation.tables[followed],
        file_mapping,
        source.release[followed].row_filter,
        rules,
    )
    (own_key, own_id), (file_key, file_id) = (
        person_columns(federation.tables[t]) for t in (table, followed)
    )
    types = federation.tables[table].columns

    def own(column: str) -> exp.Expr | None:
        held = own_mapping.columns.get(column)
        return _column(held.physical, own_mapping.physical_table) if held else None

    def in_file(column: str) -> exp.Expr | None:
        held = file_mapping.columns.get(column)
        return _column(held.physical, FILE_ALIAS) if held else None

    def released(key: exp.Expr, *conditions: exp.Expr) -> exp.Select:
        """``key`` of the released files (never NULL); its parameters go in ``used``."""
        used.extend(params)
        found = [*(_qualified(c, FILE_ALIAS) for c in filter_sql), *conditions]
        found.append(exp.not_(exp.Is(this=key.copy(), expression=exp.null())))
        select = (
            exp.select(_exact(key, rules))
            .from_(
                exp.Table(
                    this=exp.to_identifier(file_mapping.physical_table, quoted=True),
                    alias=exp.TableAlias(this=exp.to_identifier(FILE_ALIAS, quoted=True)),
                )
            )
            .where(exp.and_(*found, copy=False), copy=False)
        )
        return select

    def in_released(row: exp.Expr, key: exp.Expr, *conditions: exp.Expr) -> exp.Expr:
        subquery = exp.Subquery(this=released(key, *conditions))
        return exp.In(this=_exact(row, rules), query=subquery)

    used: list[Any] = []
    branches: list[exp.Expr] = []
    row_key, f_key = own(own_key), in_file(file_key)
    if row_key is not None and f_key is not None:
        _check_text(types[own_key], rules)
        branches.append(in_released(row_key, f_key))
    row_id, f_id = own(own_id), in_file(file_id)
    if row_id is not None and f_id is not None:
        # a row without an FPS number: its person is a file without one, by id
        _check_text(types[own_id], rules)
        keyless: list[exp.Expr] = []
        if own_key in own_mapping.columns:
            keyless.append(exp.Is(this=own(own_key), expression=exp.null()))
        without_key = (
            [exp.Is(this=in_file(file_key), expression=exp.null())]
            if file_key in file_mapping.columns
            else []
        )
        keyless.append(in_released(row_id, f_id, *without_key))
        branches.append(exp.and_(*keyless, copy=False) if len(keyless) > 1 else keyless[0])
    if not branches:
        raise ConfigError(f"no person column held in both {table} and {followed}")
    condition = branches[0] if len(branches) == 1 else exp.or_(*branches, copy=False)
    return [exp.paren(condition, copy=False)], used


def _column(name: str, table: str) -> exp.Column:
    return exp.column(name, table=exp.to_identifier(table, quoted=True), quoted=True)


def _qualified(condition: exp.Expr, alias: str) -> exp.Expr:
    """A translated condition over the person file, its columns bound to ``alias``."""
    condition = condition.copy()
    for column in condition.find_all(exp.Column):
        column.set("table", exp.to_identifier(alias, quoted=True))
    return condition


def _check_text(logical_type: str, rules: DialectRules) -> None:
    if logical_type == "VARCHAR" and rules.byte_equality == "none":
        raise ConfigError(
            f"{rules.name} compares text under its collation and no byte-exact comparison is "
            "known for it, so persons cannot be linked exactly"
        )


def _exact(value: exp.Expr, rules: DialectRules) -> exp.Expr:
    """``value`` in a form whose equality is byte for byte in this database."""
    if rules.byte_equality == "hex":
        return exp.Hex(this=value)
    return value
