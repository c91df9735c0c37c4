"""Deterministic synthetic data for the federation's source systems.

``generate`` produces every source's data in the federation's logical model;
``write_sqlite`` writes one source's data into its own physical schema and
``write_federation_data`` does both for every sqlite-backed source.
``write_postgres`` and ``write_mysql`` write a source's physical schema into
a PostgreSQL or MariaDB database, and ``load_target`` generates the data and
loads sources into one such database. The same seed and scale always give
the same data. The command line is ``accord datagen``.
"""

from __future__ import annotations

from .common import REFERENCE_DATE
from .logical import generate, person_truth
from .mysql_writer import write_mysql
from .postgres_writer import write_postgres
from .sqlite_writer import write_sqlite
from .targets import load_target, write_federation_data

__all__ = [
    "REFERENCE_DATE",
    "generate",
    "load_target",
    "person_truth",
    "write_federation_data",
    "write_mysql",
    "write_postgres",
    "write_sqlite",
]
