"""Column masks: each turns a raw column into what a role may see of it.

A mask is a SQL expression over the raw row, built as a sqlglot tree so it
is never spliced from text. It keeps the column's type unless its kind
changes it (``year_only`` gives BIGINT, ``keyed_hash`` and ``partial`` give
VARCHAR) or the policy declares the new type.

``keyed_hash`` is HMAC-SHA256 under a secret derived per partner, so two
partners' pseudonyms for the same person never match. The merge SQL carries
the derived key (as HMAC pads) but Explain shows only
``accord_keyed_hash(column)``; the key never leaves the broker.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

MASK_KINDS = ("null", "redact", "partial", "year_only", "keyed_hash", "city", "expression")

#: ``city``: a Canadian address ends ``..., <city> <province> <postal code>``;
#: the mask keeps ``<city> <province>`` (street, number and postal code gone).
#: An address of any other shape gives NULL: nothing of it is shown.
CITY_PATTERN = r"^.*,\s*([^,]*[^,\s]\s+[A-Z]{2})\s+[A-Z][0-9][A-Z]\s+[0-9][A-Z][0-9]\s*$"

#: Placeholder function name in the rewritten tree; replaced at merge time.
KEYED_HASH_FUNCTION = "accord_keyed_hash"

_HMAC_BLOCK = 64  # SHA-256 block size in bytes


@dataclass(frozen=True)
class Mask:
    kind: str
    value: str | None = None  # redact: the constant shown instead
    keep_first: int = 0  # partial
    keep_last: int = 0  # partial
    expression: str | None = None  # expression: scalar SQL over the raw row
    type: str | None = None  # declared output type, where the kind allows one

    def output_type(self, input_type: str) -> str:
        if self.kind == "year_only":
            return "BIGINT"
        if self.kind in ("keyed_hash", "partial", "city"):
            return "VARCHAR"
        if self.kind == "redact" and self.type is None:
            return "VARCHAR" if input_type == "VARCHAR" else input_type
        return self.type or input_type

    def describe(self) -> str:
        if self.kind == "partial":
            return f"partial(first {self.keep_first}, last {self.keep_last})"
        if self.kind == "redact":
            return f"redact({self.value!r})"
        if self.kind == "expression":
            return f"expression({self.expression})"
        return self.kind


def mask_expression(mask: Mask, column: exp.Column, input_type: str) -> exp.Expr:
    """The masked value of ``column`` (qualified to the raw table)."""
    out_type = exp.DataType.build(mask.output_type(input_type), dialect="duckdb")
    if mask.kind == "null" or (mask.kind == "redact" and mask.value is None):
        return exp.cast(exp.null(), out_type)
    if mask.kind == "redact":
        value = exp.cast(exp.Literal.string(str(mask.value)), out_type)
        return exp.If(
            this=exp.Is(this=column.copy(), expression=exp.null()),
            true=exp.cast(exp.null(), out_type),
            false=value,
        )
    if mask.kind in ("year_only", "partial", "city", "keyed_hash"):
        return _of_column(mask, column)
    if mask.kind != "expression" or mask.expression is None:
        raise ValueError(f"unknown mask kind {mask.kind!r}")
    tree = sqlglot.parse_one(mask.expression, read="duckdb")
    # Its type must be the declared one: `accord policy check` verifies it.
    return tree.transform(
        lambda n: (
            exp.column(n.name, table=column.table, quoted=True) if isinstance(n, exp.Column) else n
        )
    )


def _of_column(mask: Mask, column: exp.Column) -> exp.Expr:
    """The masks that are a function of the column alone."""
    if mask.kind == "year_only":
        return exp.Year(this=column.copy())
    if mask.kind == "partial":
        return _partial(column, mask.keep_first, mask.keep_last)
    if mask.kind == "city":
        return city_of(column)
    return exp.Anonymous(this=KEYED_HASH_FUNCTION, expressions=[exp.cast(column.copy(), "VARCHAR")])


def city_of(column: exp.Column) -> exp.Expr:
    """The city and province of an address, else NULL (``CITY_PATTERN``).

    >>> import duckdb
    >>> sql = city_of(exp.column("a")).sql("duckdb")
    >>> duckdb.sql(f"SELECT {sql} FROM (VALUES ('9 Rue X, Trois-Rivières QC H3A 6V1'), "
    ...            f"('Box 5'), ('1 Bay St, Toronto ON')) t(a)").fetchall()
    [('Trois-Rivières QC',), (None,), (None,)]
    """
    found = exp.RegexpExtract(
        this=exp.cast(column.copy(), "VARCHAR"),
        expression=exp.Literal.string(CITY_PATTERN),
        group=exp.Literal.number(1),
    )
    return exp.Nullif(this=found, expression=exp.Literal.string(""))


def _partial(column: exp.Column, first: int, last: int) -> exp.Expr:
    """First and last characters kept, the middle starred, the length kept.

    A value no longer than the kept characters is starred whole: keeping
    "first 2, last 2" of a 4-letter name would otherwise show all of it.
    """
    text = exp.cast(column.copy(), "VARCHAR")
    length = exp.Length(this=text.copy())
    kept = exp.Literal.number(first + last)
    stars = exp.Anonymous(
        this="repeat",
        expressions=[exp.Literal.string("*"), exp.Sub(this=length.copy(), expression=kept.copy())],
    )
    parts: list[exp.Expr] = []
    if first:
        parts.append(exp.Left(this=text.copy(), expression=exp.Literal.number(first)))
    parts.append(stars)
    if last:
        parts.append(exp.Right(this=text.copy(), expression=exp.Literal.number(last)))
    joined: exp.Expr = parts[0]
    for part in parts[1:]:
        joined = exp.DPipe(this=joined, expression=part, safe=True)
    all_stars = exp.Anonymous(this="repeat", expressions=[exp.Literal.string("*"), length.copy()])
    return (
        exp.case()
        .when(exp.Is(this=column.copy(), expression=exp.null()), exp.cast(exp.null(), "VARCHAR"))
        .when(exp.LTE(this=length.copy(), expression=kept.copy()), all_stars)
        .else_(joined)
    )


def partner_key(master_secret: bytes, partner: str) -> bytes:
    """The keyed-hash key of one partner, derived from the broker's secret."""
    return hmac.new(
        master_secret, f"accord keyed_hash v1|{partner}".encode(), hashlib.sha256
    ).digest()


def bind_keyed_hash(tree: exp.Expr, key: bytes) -> exp.Expr:
    """Replaces each ``accord_keyed_hash(x)`` with HMAC-SHA256(key, x) in SQL.

    HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), hex-encoded, with the
    pads precomputed here; DuckDB's ``sha256`` and ``unhex`` do the rest.

    >>> import duckdb
    >>> t = sqlglot.parse_one("SELECT accord_keyed_hash('Côté') AS h")
    >>> sql = bind_keyed_hash(t, b"k").sql("duckdb")
    >>> duckdb.sql(sql).fetchall()[0][0] == hmac.new(b"k", "Côté".encode(), "sha256").hexdigest()
    True
    """
    block = (
        key.ljust(_HMAC_BLOCK, b"\0")
        if len(key) <= _HMAC_BLOCK
        else hashlib.sha256(key).digest().ljust(_HMAC_BLOCK, b"\0")
    )
    ipad = bytes(b ^ 0x36 for b in block).hex()
    opad = bytes(b ^ 0x5C for b in block).hex()

    def hmac_sql(node: exp.Expr) -> exp.Expr:
        if not (isinstance(node, exp.Anonymous) and node.name.lower() == KEYED_HASH_FUNCTION):
            return node
        value = node.expressions[0]
        inner = exp.Anonymous(
            this="sha256",
            expressions=[
                exp.DPipe(
                    this=exp.Unhex(this=exp.Literal.string(ipad)),
                    expression=exp.Anonymous(this="encode", expressions=[value]),
                )
            ],
        )
        outer = exp.Anonymous(
            this="sha256",
            expressions=[
                exp.DPipe(
                    this=exp.Unhex(this=exp.Literal.string(opad)), expression=exp.Unhex(this=inner)
                )
            ],
        )
        return outer

    return tree.transform(hmac_sql)
