"""The ``city`` mask: the broker's SQL (a regular expression run by DuckDB)
and the oracle's string methods (``tests/rewrite_oracle.city_of``) read every
address alike, and what is kept never holds the street or postal code."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from broker.policy.masks import city_of as city_sql
from tests.rewrite_oracle import city_of

SQL = city_sql(exp.column("a")).sql(dialect="duckdb")
CON = duckdb.connect()

words = st.text(alphabet="abcÉé-' XYZ0123456789", min_size=0, max_size=12)
spaces = st.sampled_from([" ", "  ", "\t", "", "\n", " \r"])
letter = st.sampled_from("ABKMVXQa1")
digit = st.sampled_from("0123456789A")


@st.composite
def addresses(draw: st.DrawFn) -> str:
    """Canadian-looking addresses, most well formed, some off by one part."""
    postal = draw(letter) + draw(digit) + draw(letter) + draw(spaces) + draw(digit)
    postal += draw(letter) + draw(digit)
    province = draw(st.sampled_from(["ON", "QC", "BC", "Q", "qc", "ONT", ""]))
    parts = [draw(words), draw(st.sampled_from([",", ", ", "", ",,"])), draw(words)]
    parts += [draw(spaces), province, draw(spaces), postal, draw(spaces)]
    return "".join(parts)


def broker_city(address: str | None) -> str | None:
    ((value,),) = CON.execute(f"SELECT {SQL} FROM (SELECT ?::VARCHAR AS a)", [address]).fetchall()
    assert value is None or isinstance(value, str)
    return value


@settings(max_examples=400, deadline=None, derandomize=True)
@given(address=st.one_of(addresses(), st.text(max_size=40)))
def test_broker_and_oracle_read_every_address_alike(address):
    assert broker_city(address) == city_of(address)


@pytest.mark.parametrize(
    ("address", "city"),
    [
        ("9142 Cedar Lane, Toronto ON M2X 6J2", "Toronto ON"),
        ("6338, rue de l'Église, Trois-Rivières QC H3A 6V1", "Trois-Rivières QC"),
        ("3781 River Road, Grande Prairie AB T6G 1E1", "Grande Prairie AB"),
        ("Box 5", None),  # no city part: nothing is shown
        ("1 Bay St, Toronto ON", None),  # no postal code: not the known shape
        (None, None),
    ],
)
def test_city_keeps_city_and_province_only(address, city):
    assert broker_city(address) == city
