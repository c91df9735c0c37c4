"""The console's pages against the session's federation, without a browser
(Starlette's TestClient, the broker over real mTLS): a query read page by
page is the query read at once, bad input is the broker's clear refusal on
the page (never an error page), and an unreachable broker names no address."""

from __future__ import annotations

import html
import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from accord.workdir import Workdir
from app.console.config import ConsoleConfig
from app.console.paging import PAGE_ROWS
from app.console.users import write_users_file
from app.console.web import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

PASSWORD = "pages pass"


def signed_in(
    workdir: Workdir, tmp_path: Path, partner: str, purpose: str, broker: str = ""
) -> tuple[TestClient, str]:
    users = tmp_path / "users.yaml"
    write_users_file(users, {"pat": ("Pat", PASSWORD)})
    config = ConsoleConfig(
        partner=partner, workdir=workdir, secret=uuid.uuid4().hex, users_file=users, broker=broker
    )
    client = TestClient(create_app(config), base_url="https://testserver")
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', client.get("/signin").text)
    assert csrf
    token = csrf.group(1)
    client.post("/signin", data={"csrftoken": token, "username": "pat", "password": PASSWORD})
    client.post("/session", data={"csrftoken": token, "purpose": purpose, "case_ref": "R-PAGES"})
    return client, token


@pytest.fixture
def crown_console(running: Running, tmp_path: Path) -> tuple[TestClient, str]:
    return signed_in(running.workdir, tmp_path, "crown_attorney", "bail_hearing")


def result_rows(page: str) -> list[tuple[str, ...]]:
    body = page.split('<table id="results">', 1)[-1].split("</table>", 1)[0]
    return [
        tuple(html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row))
        for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[-1])
    ]


def test_a_query_read_page_by_page_is_the_query_read_at_once(crown_console, crown):
    client, token = crown_console
    sql = (
        "SELECT source, source_person_id, offence_code FROM sentences "
        "ORDER BY source, source_person_id, sentence_date, offence_code LIMIT 130"
    )
    whole = [
        tuple("" if v is None else str(v) for v in row.values())
        for row in crown.query(sql).table.to_pylist()
    ]
    seen: list[tuple[str, ...]] = []
    for page in range(5):
        answer = client.post(
            "/workbench/run",
            data={"csrftoken": token, "sql": sql, "page": str(page)},
            headers={"hx-request": "true"},
        ).text
        rows = result_rows(answer)
        assert len(rows) <= PAGE_ROWS
        seen += rows
        if 'id="next-page"' not in answer:
            break
    assert seen == whole and len(whole) == 130


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({"fps_number": "12AB"}, "INVALID_ARGUMENT"),
        (
            {"surname": "Roy", "given_names": "Marie", "birth_date": "1988-13-45"},
            "INVALID_ARGUMENT",
        ),
    ],
)
def test_bad_search_input_is_the_brokers_refusal_on_the_page(crown_console, form, expected):
    client, token = crown_console
    page = client.post("/search", data={"csrftoken": token, **form})
    assert page.status_code == 400
    assert expected in page.text and 'role="alert"' in page.text


def test_an_unknown_fps_number_is_an_empty_history_not_an_error(crown_console):
    client, token = crown_console
    page = client.post("/search", data={"csrftoken": token, "fps_number": "9999998Z"})
    assert page.status_code == 200 and "No history found" in page.text


def test_a_broker_that_does_not_answer_is_named_by_no_address(running: Running, tmp_path):
    client, token = signed_in(
        running.workdir, tmp_path, "crown_attorney", "bail_hearing", broker="127.0.0.1:9"
    )
    page: Any = client.post(
        "/workbench/run",
        data={"csrftoken": token, "sql": "SELECT 1"},
        headers={"hx-request": "true"},
    )
    assert "the broker did not answer" in page.text
    assert "127.0.0.1" not in page.text and "Traceback" not in page.text
