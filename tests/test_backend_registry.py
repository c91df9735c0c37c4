"""The backend registry is the one list of backends, and the others agree with it."""

from __future__ import annotations

import pytest

from accord.errors import ConfigError
from accord.federation import BACKEND_KINDS, Backend, Source
from adapters.backends import open_backend
from adapters.backends.dsn import mysql_connect_args
from adapters.backends.mysql import connection_config
from adapters.backends.registry import BACKENDS, backend_type, for_url, server_schemes
from adapters.dialects import RULES


def test_the_federation_names_exactly_the_registered_kinds():
    assert sorted(BACKEND_KINDS) == sorted(BACKENDS)


def test_every_dialect_has_rules_and_every_rule_a_backend():
    assert {b.dialect for b in BACKENDS.values()} == set(RULES)
    for backend in BACKENDS.values():
        assert backend.rules.name == backend.dialect


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_each_kind_opens_a_backend_of_its_dialect(kind, tmp_path):
    registered = backend_type(kind)
    config = (
        Backend(kind, dsn=f"{registered.schemes[0]}://u@127.0.0.1:1/x")
        if registered.server
        else Backend(kind, path="x.db")
    )
    source = Source("T", "sys", "j", "", (), config, {})
    backend = open_backend(source, tmp_path)  # connects lazily: nothing listens on port 1
    try:
        assert backend.dialect == registered.dialect
    finally:
        backend.close()


URLS = {
    "postgres://h/db": "postgresql",
    "postgresql://h/db": "postgresql",
    "mysql://h/db": "mysql",
    "mariadb://h/db": "mysql",
    "sqlite:///x": None,
}


def test_urls_find_their_server_backend():
    kinds = {url: getattr(for_url(url), "kind", None) for url in URLS}
    assert kinds == URLS
    assert server_schemes() == "postgresql:// or mysql://"
    parse = backend_type("postgresql").parse_dsn
    assert parse is not None and parse("postgresql://h/oms")["dbname"] == "oms"
    with pytest.raises(ConfigError, match="unknown backend"):
        backend_type("oracle")


def test_the_adapter_reads_a_mysql_dsn_as_before():
    assert connection_config("mariadb://app:p%40ss@db:3307/oms/?unix_socket=/s") == {
        "host": "db",
        "port": 3307,
        "user": "app",
        "password": "p@ss",
        "database": "oms",
        "connection_timeout": 5,
        "charset": "utf8mb4",
        "use_pure": True,
        "autocommit": False,
    }
    assert connection_config("mysql://h/oms")["user"] == "root"
    with pytest.raises(ConfigError, match="looks like"):
        connection_config("mysql://h/")
    assert mysql_connect_args("mysql://h/oms?unix_socket=/s")["unix_socket"] == "/s"


def test_every_backend_kind_has_a_data_writer():
    from adapters.datagen.targets import WRITERS

    assert set(WRITERS) == set(BACKENDS)
    for kind, writer in WRITERS.items():
        # a server backend's data can be loaded into a URL of its scheme
        assert (writer.load is not None) == BACKENDS[kind].server
        assert (writer.create_database is not None) == BACKENDS[kind].server
