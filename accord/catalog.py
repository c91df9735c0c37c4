"""The federation's catalog as the broker's SQL sees it: the logical tables,
the columns some source releases, and the ``source`` column the broker adds
to every row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accord.federation import Federation

#: The column the broker adds to every row: the code of the source it came from.
SOURCE_COLUMN = "source"


def catalog_schema(federation: Federation) -> dict[str, object]:
    """Table -> column -> type, as sqlglot's qualify expects, with ``source``:
    only tables and columns some source releases to the federation."""
    schema: dict[str, object] = {}
    for name, table in federation.tables.items():
        columns = federation.released_columns(name)
        if columns:
            schema[name] = {**{c: table.columns[c] for c in columns}, SOURCE_COLUMN: "VARCHAR"}
    return schema
