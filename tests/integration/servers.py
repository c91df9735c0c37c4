"""The database servers integration tests use, and the one rule for when one
is missing: fail under CI (those tests must run there), skip elsewhere."""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
MARIADB_SERVER = "mysql://root@127.0.0.1:3306"


def unreachable(kind: str, error: BaseException) -> None:
    message = f"{kind} not reachable on loopback: {error}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_postgres() -> None:
    import psycopg

    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except psycopg.Error as exc:
        unreachable("PostgreSQL", exc)


def require_mariadb() -> None:
    import mysql.connector

    try:
        mysql.connector.connect(
            host="127.0.0.1", port=3306, user="root", password="", connection_timeout=3
        ).close()
    except mysql.connector.Error as exc:
        unreachable("MariaDB", exc)


def require_servers() -> None:
    require_postgres()
    require_mariadb()


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new, uniquely named PostgreSQL database for one test (its DSN),
    dropped afterwards however the test ends."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        unreachable("PostgreSQL", exc)
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def scratch_mariadb(prefix: str) -> Iterator[str]:
    """A new, uniquely named MariaDB database (utf8mb4) for one test (its
    DSN), dropped afterwards however the test ends."""
    import mysql.connector

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = mysql.connector.connect(
            host="127.0.0.1", port=3306, user="root", password="", connection_timeout=5
        )
    except mysql.connector.Error as exc:
        unreachable("MariaDB", exc)
    cursor = admin.cursor()
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield f"{MARIADB_SERVER}/{name}"
    finally:
        cursor.execute(f"DROP DATABASE `{name}`")
        admin.close()
