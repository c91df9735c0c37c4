"""The web console without a broker: sign-in (local users, and OpenID Connect
against a small identity provider of the test's own), sessions that expire,
CSRF on every POST, the headers on every response, paging and the aggregate
grid. The pages that ask the broker are in integration/test_console*.py."""

from __future__ import annotations

import re
import time
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

import httpx2
import pyarrow as pa
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from accord.workdir import Workdir
from app.console import aggregate, paging
from app.console.config import ConsoleConfig, OidcConfig
from app.console.users import LocalUsers, write_users_file
from app.console.web import CSRF_COOKIE, SESSION_COOKIE, create_app

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.requests import Request

PASSWORD = "s3cret pass"
IDP = "https://idp.test"


def config(tmp_path: Path, **overrides: Any) -> ConsoleConfig:
    users = tmp_path / "users.yaml"
    write_users_file(users, {"ana": ("Ana Ng", PASSWORD)})
    values: dict[str, Any] = {
        "partner": "crown_attorney",
        "workdir": Workdir(tmp_path / "wd"),
        "secret": uuid.uuid4().hex,
        "users_file": users,
        **overrides,
    }
    return ConsoleConfig(**values)


def token(page: str) -> str:
    found = re.search(r'name="csrftoken" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def browser(cfg: ConsoleConfig, **kwargs: Any) -> TestClient:
    # https: the cookies are Secure, and a client keeps them for https only
    return TestClient(create_app(cfg, **kwargs), base_url="https://testserver")


def sign_in(client: TestClient, password: str = PASSWORD) -> Any:
    csrf = token(client.get("/signin").text)
    return client.post(
        "/signin",
        data={"csrftoken": csrf, "username": "ana", "password": password},
        follow_redirects=False,
    )


def test_every_response_forbids_caching_framing_inline_script_and_referrers(tmp_path):
    client = browser(config(tmp_path))
    for response in (
        client.get("/signin"),
        client.get("/static/htmx.min.js"),
        client.get("/nowhere"),
        client.post("/signin", data={}),
    ):
        headers = response.headers
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    page = client.get("/signin").text
    assert "<script>" not in page and "style=" not in page and "onclick" not in page


def test_cookies_are_http_only_secure_and_same_site_strict(tmp_path):
    client = browser(config(tmp_path))
    response = sign_in(client)
    cookies = response.headers.get_list("set-cookie")
    names = {c.split("=", 1)[0] for c in cookies}
    assert SESSION_COOKIE in names
    for cookie in [*cookies, *client.get("/signin").headers.get_list("set-cookie")]:
        lowered = cookie.lower()
        assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered
    assert CSRF_COOKIE in {
        c.split("=", 1)[0]
        for c in browser(config(tmp_path)).get("/signin").headers.get_list("set-cookie")
    }


def test_a_post_without_the_csrf_token_is_refused_even_without_cookies(tmp_path):
    cfg = config(tmp_path)
    fresh = browser(cfg)  # no cookie at all: a forged sign-in from another site
    assert fresh.post("/signin", data={"username": "ana", "password": PASSWORD}).status_code == 403
    client = browser(cfg)
    assert sign_in(client).status_code == 303
    for path in ("/signout", "/session", "/search", "/workbench/run", "/workbench/export"):
        refused = client.post(path, data={"sql": "SELECT 1", "fps_number": "1234567K"})
        assert refused.status_code == 403, path
        wrong = client.post(path, data={"csrftoken": "forged", "fps_number": "1234567K"})
        assert wrong.status_code == 403, path


def test_a_wrong_password_or_user_signs_no_one_in(tmp_path):
    client = browser(config(tmp_path))
    refused = sign_in(client, "wrong")
    assert refused.status_code == 401 and "wrong password" in refused.text
    assert client.get("/search", follow_redirects=False).headers["location"] == "/signin"
    csrf = token(client.get("/signin").text)
    nobody = client.post("/signin", data={"csrftoken": csrf, "username": "eve", "password": "x"})
    assert nobody.status_code == 401


def test_failed_sign_ins_lock_that_name_for_a_while_even_with_the_right_password(tmp_path):
    client = browser(config(tmp_path))
    for _ in range(5):
        assert sign_in(client, "guess").status_code == 401
    locked = sign_in(client)  # the right password, after five wrong ones
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert client.get("/search", follow_redirects=False).headers["location"] == "/signin"
    other = browser(config(tmp_path))  # a new console: its own count
    assert sign_in(other).status_code == 303


def test_the_sign_in_throttle_counts_failures_per_name_and_per_client():
    from app.console.throttle import SigninThrottle

    throttle = SigninThrottle(per_user="2/hour", per_client="3/hour")
    throttle.failed("Ana", "10.0.0.1")
    assert throttle.wait_s("ana", "10.0.0.1") == 0
    throttle.failed("ana", "10.0.0.1")  # names count without regard to case
    assert 3500 < throttle.wait_s("ANA", "10.0.0.2") <= 3600
    assert throttle.wait_s("bob", "10.0.0.1") == 0
    throttle.failed("bob", "10.0.0.1")  # the client's third failure
    assert throttle.wait_s("carl", "10.0.0.1") > 0 and throttle.wait_s("carl", "10.0.0.3") == 0


def test_signed_out_pages_lead_to_sign_in_and_sign_out_ends_the_session(tmp_path):
    client = browser(config(tmp_path))
    for path in ("/", "/search", "/workbench", "/aggregate", "/session"):
        assert client.get(path, follow_redirects=False).headers["location"] == "/signin", path
    assert sign_in(client).headers["location"] == "/session"
    csrf = token(client.get("/signin", follow_redirects=True).text)
    assert (
        client.post("/signout", data={"csrftoken": csrf}, follow_redirects=False).status_code == 303
    )
    assert client.get("/search", follow_redirects=False).headers["location"] == "/signin"


def test_a_session_expires_after_its_lifetime_and_its_cookie_when_idle(tmp_path, monkeypatch):
    cfg = config(tmp_path, absolute_timeout_s=60, idle_timeout_s=120)
    client = browser(cfg)
    response = sign_in(client)
    session = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "max-age=120" in session.lower()
    # signed in, purpose not chosen yet: the session page (no broker here: it says so)
    assert client.get("/search", follow_redirects=False).headers["location"] == "/session"
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert client.get("/search", follow_redirects=False).headers["location"] == "/signin"


def test_the_users_file_keeps_argon2_hashes_only(tmp_path):
    cfg = config(tmp_path)
    assert cfg.users_file is not None
    text = cfg.users_file.read_text()
    assert PASSWORD not in text and "$argon2id$" in text
    assert oct(cfg.users_file.stat().st_mode & 0o777) == "0o600"
    users = LocalUsers.load(cfg.users_file)
    assert users.verify("ana", PASSWORD) is not None
    assert users.verify("ana", PASSWORD + "x") is None


# --- OpenID Connect against an identity provider of the test's own ---------


class Provider:
    """The few endpoints of an OpenID provider the code flow uses."""

    def __init__(self, client_id: str, user: str, *, forge: bool = False) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
        #: Signs the ID token with a key of its own, not the one it publishes.
        self.signer = RSAKey.generate_key(2048, parameters={"kid": "k1"}) if forge else self.key
        self.client_id, self.user = client_id, user
        self.codes: dict[str, str] = {}  # code -> nonce
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )

    async def discovery(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": IDP,
                "authorization_endpoint": f"{IDP}/authorize",
                "token_endpoint": f"{IDP}/token",
                "jwks_uri": f"{IDP}/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "subject_types_supported": ["public"],
            }
        )

    async def authorize(self, request: Request) -> RedirectResponse:
        query = request.query_params
        assert query["client_id"] == self.client_id and query["response_type"] == "code"
        code = uuid.uuid4().hex
        self.codes[code] = query["nonce"]
        back = f"{query['redirect_uri']}?" + urllib.parse.urlencode(
            {"code": code, "state": query["state"]}
        )
        return RedirectResponse(back)

    async def token(self, request: Request) -> JSONResponse:
        form = await request.form()
        nonce = self.codes.pop(str(form["code"]))
        now = int(time.time())
        claims = {
            "iss": IDP,
            "aud": self.client_id,
            "sub": "u-1",
            "preferred_username": self.user,
            "name": "Ana Ng",
            "nonce": nonce,
            "iat": now,
            "exp": now + 300,
        }
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.signer)
        return JSONResponse(
            {"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        )

    async def jwks(self, request: Request) -> JSONResponse:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})


def oidc_console(tmp_path: Path, provider: Provider) -> TestClient:
    oidc = OidcConfig(IDP, provider.client_id, "secret", "https://testserver/oidc/callback")
    cfg = config(tmp_path, users_file=None, oidc=oidc)
    return browser(cfg, transport=httpx2.ASGITransport(app=provider.app))


def through_the_provider(client: TestClient, provider: Provider) -> Any:
    """The browser's round trip: to the provider, which signs the person in
    and sends them back to the console's callback."""
    start = client.get("/oidc/login", follow_redirects=False)
    assert start.status_code == 302
    location = start.headers["location"]
    assert location.startswith(f"{IDP}/authorize?")
    at_provider = TestClient(provider.app, base_url=IDP).get(
        location.removeprefix(IDP), follow_redirects=False
    )
    callback = at_provider.headers["location"].removeprefix("https://testserver")
    return client.get(callback, follow_redirects=False)


def test_an_id_token_not_signed_by_the_providers_key_signs_no_one_in(tmp_path):
    provider = Provider("console-crown", "ana", forge=True)
    client = oidc_console(tmp_path, provider)
    refused = through_the_provider(client, provider)
    assert refused.status_code == 401 and "did not sign you in" in refused.text
    assert client.get("/search", follow_redirects=False).headers["location"] == "/signin"


def test_openid_connect_signs_a_person_in_with_the_providers_name_for_them(tmp_path):
    provider = Provider("console-crown", "ana.ng@crown.example")
    client = oidc_console(tmp_path, provider)
    assert "Sign in with your organization" in client.get("/signin").text
    signed = through_the_provider(client, provider)
    assert signed.status_code == 303 and signed.headers["location"] == "/session"
    # the session page names the person (the broker is absent: it says so, no address)
    page = client.get("/session").text
    assert "ana.ng@crown.example" in page and "did not answer" in page
    assert "127.0.0.1" not in page and "Traceback" not in page


def test_openid_connect_refuses_a_forged_or_replayed_callback(tmp_path):
    provider = Provider("console-crown", "ana")
    client = oidc_console(tmp_path, provider)
    start = client.get("/oidc/login", follow_redirects=False)
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(start.headers["location"]).query)
    forged = client.get("/oidc/callback?code=nope&state=forged", follow_redirects=False)
    assert forged.status_code == 401
    assert client.get("/search", follow_redirects=False).headers["location"] == "/signin"
    assert state["nonce"]  # the flow carries a nonce the ID token must repeat


# --- paging and the aggregate grid -----------------------------------------


@pytest.mark.parametrize(
    ("sql", "page", "expected"),
    [
        ("SELECT a FROM t", 0, "SELECT a FROM t LIMIT 51"),
        ("SELECT a FROM t ORDER BY a", 1, "SELECT a FROM t ORDER BY a LIMIT 51 OFFSET 50"),
        ("SELECT a FROM t LIMIT 70", 1, "SELECT a FROM t LIMIT 20 OFFSET 50"),
        ("SELECT a FROM t LIMIT 10 OFFSET 5", 0, "SELECT a FROM t LIMIT 10 OFFSET 5"),
        (
            "SELECT a FROM t UNION SELECT b FROM u",
            0,
            "SELECT a FROM t UNION SELECT b FROM u LIMIT 51",
        ),
        ("not sql at all (", 0, "not sql at all ("),
    ],
)
def test_page_sql_narrows_the_query_to_one_page(sql, page, expected):
    assert paging.page_sql(sql, page) == expected


def test_paging_covers_a_query_once_in_order():
    """Pages of a query with its own LIMIT and OFFSET, run on DuckDB, add up to the query."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS a FROM range(237)")
    for sql in ("SELECT a FROM t ORDER BY a", "SELECT a FROM t ORDER BY a LIMIT 130 OFFSET 7"):
        whole = [r[0] for r in con.sql(sql).fetchall()]
        seen: list[int] = []
        for page in range(10):
            paged = paging.page_sql(sql, page, rows=25)
            if paged is None:
                break
            rows = [r[0] for r in con.sql(paged).fetchall()]
            seen += rows[:25]
            if len(rows) <= 25:
                break
        assert seen == whole


def test_the_grid_shows_every_combination_and_marks_the_unreleased():
    answer = pa.table({"source": ["BC", "ON"], "status": ["UAL", "UAL"], "value": [10, 25]})
    grid = aggregate.grid(answer, ["source", "status"], "count", {"source": ["BC", "ON", "YT"]})
    cells = dict(grid.cells)
    assert cells == {("BC", "UAL"): "10", ("ON", "UAL"): "25", ("YT", "UAL"): "suppressed"}
    assert grid.suppressed == 1


def test_the_builder_puts_only_catalog_names_into_sql():
    with pytest.raises(ValueError, match="catalog name"):
        aggregate.builder_sql("offenders", ["status; DROP"], "count", "")
    with pytest.raises(ValueError, match="catalog name"):
        aggregate.builder_sql("offenders", ["status"], "max", "x")


# --- the command ------------------------------------------------------------


def test_accord_console_without_a_certificate_or_a_way_to_sign_in_is_refused(
    tmp_path, capsys, monkeypatch
):
    from app.cli import main
    from app.console.serve import OIDC_ENV, oidc_from_env

    workdir = str(tmp_path / "wd")
    assert main(["console", "--as", "crown_attorney", "--workdir", workdir]) == 2
    assert "no partner certificates" in capsys.readouterr().err
    partial = {OIDC_ENV["issuer"]: IDP}
    with pytest.raises(Exception, match="ACCORD_CONSOLE_OIDC_CLIENT_ID"):
        oidc_from_env(partial)
    assert oidc_from_env({}) is None
    full = {name: f"v-{key}" for key, name in OIDC_ENV.items()}
    oidc = oidc_from_env(full)
    assert oidc is not None and oidc.client_secret == "v-client_secret"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("SMITH", "SMITH"),
        (-5, "-5"),  # a number stays a number
        (None, ""),
    ],
)
def test_an_exported_text_cell_never_reads_as_a_spreadsheet_formula(value, cell):
    from app.console.workbench import _csv, csv_cell

    assert csv_cell(value) == cell
    import csv
    import io

    exported = list(csv.reader(io.StringIO(_csv(pa.table({"note": pa.array([value])})).decode())))
    assert exported == [["note"], [cell]]
