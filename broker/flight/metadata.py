"""Flight SQL metadata commands, answered from the caller's catalog.

Every table and column comes from ``QueryPipeline.catalog`` (what this
caller's role may see, within what the sources release), so a client lists
exactly what it may query. The logical tables have no catalog or schema
(they are named bare in SQL): ``catalog_name`` and ``db_schema_name`` are
the empty string, which the specification reads as "without a catalog"
(GetCatalogs and GetDbSchemas list that one, so clients that walk
catalogs, then schemas, then tables, as ADBC's GetObjects does, find them). There are no keys: the
primary and foreign key commands answer empty tables. Result schemas are
the Flight SQL specification's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pyarrow as pa

from accord import ipc
from accord.federation import LOGICAL_TYPES
from accord.flight import FlightSql_pb2 as sql

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from accord.v1 import broker_pb2

SERVER_NAME = "Accord"
SERVER_VERSION = "0.1.0"
TABLE_TYPE = "TABLE"
#: The catalog and schema of every table: none (the empty string).
NO_NAME = ""

_TEXT = pa.string()
CATALOGS = pa.schema([pa.field("catalog_name", _TEXT, nullable=False)])
DB_SCHEMAS = pa.schema(
    [pa.field("catalog_name", _TEXT), pa.field("db_schema_name", _TEXT, nullable=False)]
)
TABLES = pa.schema(
    [
        pa.field("catalog_name", _TEXT),
        pa.field("db_schema_name", _TEXT),
        pa.field("table_name", _TEXT, nullable=False),
        pa.field("table_type", _TEXT, nullable=False),
    ]
)
TABLES_WITH_SCHEMA = TABLES.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES = pa.schema([pa.field("table_type", _TEXT, nullable=False)])
PRIMARY_KEYS = pa.schema(
    [
        pa.field("catalog_name", _TEXT),
        pa.field("db_schema_name", _TEXT),
        pa.field("table_name", _TEXT, nullable=False),
        pa.field("column_name", _TEXT, nullable=False),
        pa.field("key_name", _TEXT),
        pa.field("key_sequence", pa.int32(), nullable=False),
    ]
)
FOREIGN_KEYS = pa.schema(
    [
        pa.field("pk_catalog_name", _TEXT),
        pa.field("pk_db_schema_name", _TEXT),
        pa.field("pk_table_name", _TEXT, nullable=False),
        pa.field("pk_column_name", _TEXT, nullable=False),
        pa.field("fk_catalog_name", _TEXT),
        pa.field("fk_db_schema_name", _TEXT),
        pa.field("fk_table_name", _TEXT, nullable=False),
        pa.field("fk_column_name", _TEXT, nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", _TEXT),
        pa.field("pk_key_name", _TEXT),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)
#: GetSqlInfo's value: a dense union, its members in this order (type codes 0-5).
_INFO_VALUE = pa.dense_union(
    [
        pa.field("string_value", _TEXT),
        pa.field("bool_value", pa.bool_()),
        pa.field("bigint_value", pa.int64()),
        pa.field("int32_bitmask", pa.int32()),
        pa.field("string_list", pa.list_(_TEXT)),
        pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32()))),
    ]
)
SQL_INFO = pa.schema(
    [pa.field("info_name", pa.uint32(), nullable=False), pa.field("value", _INFO_VALUE, False)]
)

#: What the broker says of itself (SqlInfo ids of the specification).
_INFO: dict[int, str | bool | int] = {
    0: SERVER_NAME,  # FLIGHT_SQL_SERVER_NAME
    1: SERVER_VERSION,  # FLIGHT_SQL_SERVER_VERSION
    2: pa.__version__,  # FLIGHT_SQL_SERVER_ARROW_VERSION
    3: True,  # FLIGHT_SQL_SERVER_READ_ONLY
    4: True,  # FLIGHT_SQL_SERVER_SQL
    5: False,  # FLIGHT_SQL_SERVER_SUBSTRAIT
    8: 0,  # FLIGHT_SQL_SERVER_TRANSACTION: none
    9: False,  # FLIGHT_SQL_SERVER_CANCEL
    504: '"',  # SQL_IDENTIFIER_QUOTE_CHAR
}

#: The metadata commands, by message type, with the schema of their answer.
SCHEMAS: dict[type[Message], pa.Schema] = {
    sql.CommandGetSqlInfo: SQL_INFO,
    sql.CommandGetCatalogs: CATALOGS,
    sql.CommandGetDbSchemas: DB_SCHEMAS,
    sql.CommandGetTables: TABLES,
    sql.CommandGetTableTypes: TABLE_TYPES,
    sql.CommandGetPrimaryKeys: PRIMARY_KEYS,
    sql.CommandGetExportedKeys: FOREIGN_KEYS,
    sql.CommandGetImportedKeys: FOREIGN_KEYS,
    sql.CommandGetCrossReference: FOREIGN_KEYS,
}


def schema_of(command: Message) -> pa.Schema:
    if isinstance(command, sql.CommandGetTables) and command.include_schema:
        return TABLES_WITH_SCHEMA
    return SCHEMAS[type(command)]


def answer(command: Message, catalog: broker_pb2.CatalogResponse) -> pa.Table:
    """The table a metadata command answers for this caller's catalog."""
    if isinstance(command, sql.CommandGetSqlInfo):
        return sql_info(list(command.info))
    if isinstance(command, sql.CommandGetTables):
        return tables(command, catalog)
    if isinstance(command, sql.CommandGetTableTypes):
        return pa.table([[TABLE_TYPE]], schema=TABLE_TYPES)
    if isinstance(command, sql.CommandGetCatalogs):
        return pa.table([[NO_NAME]], schema=CATALOGS)
    if isinstance(command, sql.CommandGetDbSchemas):
        found = _in_scope(command, "db_schema_filter_pattern")
        return pa.table([[NO_NAME] * found, [NO_NAME] * found], schema=DB_SCHEMAS)
    return schema_of(command).empty_table()


def table_schema(table: broker_pb2.CatalogTable) -> pa.Schema:
    """A table's columns as this caller may see them, as Arrow types."""
    return pa.schema(
        [pa.field(c.name, LOGICAL_TYPES.get(c.type, pa.string())) for c in table.columns]
    )


def tables(command: sql.CommandGetTables, catalog: broker_pb2.CatalogResponse) -> pa.Table:
    """The caller's tables matching the command's filters, by name.

    A catalog or schema filter that names one finds nothing (there are none);
    ``table_types`` other than TABLE find nothing.
    """
    found = sorted(catalog.tables, key=lambda t: t.name)
    if not _in_scope(command, "db_schema_filter_pattern"):
        found = []
    if command.HasField("table_name_filter_pattern"):
        found = [t for t in found if _like(command.table_name_filter_pattern, t.name)]
    if command.table_types and TABLE_TYPE not in command.table_types:
        found = []
    columns: list[list[object]] = [
        [NO_NAME] * len(found),
        [NO_NAME] * len(found),
        [t.name for t in found],
        [TABLE_TYPE] * len(found),
    ]
    if command.include_schema:
        columns.append([ipc.schema_to_bytes(table_schema(t)) for t in found])
    return pa.table(columns, schema=schema_of(command))


def sql_info(wanted: list[int]) -> pa.Table:
    """GetSqlInfo's answer: the ids asked for that the broker knows (all if none)."""
    ids = [i for i in (wanted or list(_INFO)) if i in _INFO]
    codes, offsets = [], []
    members: list[list[object]] = [[] for _ in _INFO_VALUE]
    for info in ids:
        value = _INFO[info]
        code = 0 if isinstance(value, str) else 1 if isinstance(value, bool) else 3
        codes.append(code)
        offsets.append(len(members[code]))
        members[code].append(value)
    children = [
        pa.array(values, type=_INFO_VALUE.field(i).type) for i, values in enumerate(members)
    ]
    value = pa.UnionArray.from_dense(
        pa.array(codes, pa.int8()),
        pa.array(offsets, pa.int32()),
        children,
        [f.name for f in _INFO_VALUE],
    )
    return pa.Table.from_arrays([pa.array(ids, pa.uint32()), value], schema=SQL_INFO)


def _in_scope(command: Message, schema_filter: str) -> int:
    """1 if the command's catalog and schema filters admit the nameless ones, else 0."""
    if command.HasField("catalog") and command.catalog:  # type: ignore[attr-defined]
        return 0
    if command.HasField(schema_filter) and not _like(getattr(command, schema_filter), NO_NAME):
        return 0
    return 1


def _like(pattern: str, name: str) -> bool:
    """A Flight SQL filter pattern (``%`` any text, ``_`` one character), case-sensitive."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.DOTALL) is not None
