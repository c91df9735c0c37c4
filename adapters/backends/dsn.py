"""Parsing a server backend's DSN into its driver's connection arguments.

Kept apart from the backends and the data writers so both read a DSN the
same way, and so parsing one needs no database driver imported.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from accord.errors import ConfigError

#: URL schemes of a MariaDB / MySQL DSN.
MYSQL_SCHEMES = ("mysql", "mariadb")


def mysql_connect_args(dsn: str, *, database: bool = True) -> dict[str, Any]:
    """mysql-connector arguments for ``mysql://user:password@host:port/dbname``.

    User and password are percent-decoded; query parameters (e.g.
    ``unix_socket``) are passed on as strings. With ``database=False`` the
    database is left out (to connect to the server itself).

    >>> mysql_connect_args("mysql://root:p%40ss@db:3307/oms?unix_socket=/s")
    {'host': 'db', 'port': 3307, 'user': 'root', 'password': 'p@ss', 'database': 'oms', \
'unix_socket': '/s'}
    """
    url = urlsplit(dsn)
    if url.scheme not in MYSQL_SCHEMES:
        raise ConfigError(f"not a mysql:// URL: {url.scheme}://...")
    args: dict[str, Any] = {"host": url.hostname or "127.0.0.1", "port": url.port or 3306}
    if url.username:
        args["user"] = unquote(url.username)
    if url.password is not None:
        args["password"] = unquote(url.password)
    name = unquote(url.path.lstrip("/"))
    if database:
        if not name:
            raise ConfigError("the mysql:// URL names no database (mysql://user@host:port/dbname)")
        args["database"] = name
    args.update(parse_qsl(url.query))
    return args


def postgres_connect_args(dsn: str) -> dict[str, Any]:
    """libpq keywords of a PostgreSQL connection string or URL (psycopg parses it).

    >>> postgres_connect_args("postgresql://postgres@127.0.0.1:5432/oms")["dbname"]
    'oms'
    """
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(dsn)
