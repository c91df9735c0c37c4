"""The database servers integration tests use, and the one rule for when one
is missing: fail under CI (those tests must run there), skip elsewhere."""

from __future__ import annotations

import os

import pytest

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
