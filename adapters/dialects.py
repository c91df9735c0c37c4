"""How each source database's comparisons differ from the federation's.

The federation's predicates mean what they mean in DuckDB: bytewise text
comparisons, case-sensitive LIKE without escapes, real dates. A source
database may differ (a case- and accent-insensitive collation, backslash
escapes in LIKE, dates stored as text), and whether a conjunct can be pushed
to it faithfully depends on exactly how. This module holds those facts, one
``DialectRules`` per sqlglot dialect, apart from the translation
(``adapters.translate``) that consults them, so describing a new database is
one entry here rather than conditions spread through the translator.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DialectRules:
    """How a database's comparisons differ from the federation's (DuckDB's).

    ``exact``: the physical comparison holds for exactly the same rows.
    ``superset``: it holds for those rows and maybe more (a case-insensitive
    collation matches 'a' for 'A'): still worth pushing to narrow the scan,
    but the broker must re-check, and no LIMIT may be pushed with it.
    """

    name: str
    text_equality: str = "exact"  # exact | superset
    text_range: str = "exact"  # exact | collate_c (bytewise only under COLLATE "C") | none
    like: str = "exact"  # exact | superset
    like_backslash_escapes: bool = False  # LIKE treats '\\' as an escape by default
    native_dates: bool = False  # unformatted DATE columns are real DATEs, not ISO text
    #: How two stored texts are compared byte for byte (the release's person
    #: link): plain ``=``, ``hex`` (``HEX()`` both sides: hex digits compare
    #: alike under any collation), or ``none`` known, so no person link there.
    byte_equality: str = "none"
    #: How one text is matched against a fixed layout of ASCII digits and
    #: separators (a date as its format prints it): ``glob`` (SQLite's GLOB),
    #: ``regex`` (PostgreSQL's ``~`` under COLLATE "C"), or ``none`` (one
    #: comparison per character: slower, but any database has it).
    digit_pattern: str = "none"


RULES: dict[str, DialectRules] = {
    # case_sensitive_like is set on every SQLite connection; BINARY collation
    "sqlite": DialectRules("sqlite", byte_equality="plain", digit_pattern="glob"),
    # deterministic collations (the default) compare equal only byte for byte
    "postgres": DialectRules(
        "postgres",
        text_range="collate_c",
        like_backslash_escapes=True,
        native_dates=True,
        byte_equality="plain",
        digit_pattern="regex",
    ),
    # MariaDB/MySQL with a case- and accent-insensitive collation
    "mysql": DialectRules(
        "mysql",
        text_equality="superset",
        text_range="none",
        like="superset",
        like_backslash_escapes=True,
        native_dates=True,
        byte_equality="hex",  # HEX(a) = HEX(b): hex digits, no case, no blanks
    ),
}
