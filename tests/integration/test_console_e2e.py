"""The web console end to end, in a real headless Chromium driven by
Selenium (Debian's ``chromium`` and ``chromium-driver``) against the
session's federation over mTLS: a person of the crown attorney signs in,
chooses the purpose and case, searches a person present in four systems,
reads the history, opens the bail brief and downloads it as PDF, runs a
query (two pages), explains it, exports it as CSV, and is refused a denied
column. Each page's screenshot is not blank and has no serious or critical
axe-core violation; the broker's audit names the person at every step.

``ACCORD_CONSOLE_SCREENSHOTS=DIR`` keeps each page's screenshot there
(docs/console/ holds the committed ones). Without chromium or chromedriver
these skip locally and fail under CI=true.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pypdf
import pytest
from PIL import Image
from selenium.webdriver.support.ui import Select

from accord.audit.search import search
from app import brief
from app.console.config import ConsoleConfig
from app.console.serve import ConsoleServer
from app.console.users import write_users_file
from tests.integration.servers import unreachable
from tests.integration.test_brief import MAX_PAGES, assert_not_blank, rich_person

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

USER, PASSWORD = "e2e.attorney", "correct horse battery staple"
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js"
WIDTH, HEIGHT = 1280, 900
#: Seconds a page or a download may take on a busy machine.
WAIT_S = 60.0


def wait_for(what: str, check: Callable[[], Any], within_s: float = WAIT_S) -> Any:
    """Poll ``check`` until it returns something true (an event: a page, a file)."""
    deadline = time.monotonic() + within_s
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {within_s:.0f} s")
        time.sleep(0.1)
    return value


def serve(running: Running, partner: str, users: Path) -> ConsoleServer:
    write_users_file(users, {USER: ("E2E Attorney", PASSWORD)})
    config = ConsoleConfig(
        partner=partner, workdir=running.workdir, secret=uuid.uuid4().hex, users_file=users
    )
    return ConsoleServer(config).start()


@pytest.fixture(scope="module")
def console(running: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The crown attorney's console."""
    server = serve(running, "crown_attorney", tmp_path_factory.mktemp("console") / "users.yaml")
    try:
        yield server.url.rstrip("/")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def statistics_console(running: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The statistics agency's console (an aggregate-only role)."""
    server = serve(running, "statistics", tmp_path_factory.mktemp("console") / "users.yaml")
    try:
        yield server.url.rstrip("/")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """One headless Chromium for the module, with a private profile and home."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    chromedriver = shutil.which("chromedriver")
    try:
        chromium = brief.find_chromium()
        if chromedriver is None:
            raise FileNotFoundError("chromedriver not on PATH (Debian: chromium-driver)")
    except (brief.BriefError, FileNotFoundError) as exc:
        unreachable("chromium and chromedriver", exc)
        raise
    tmp = tmp_path_factory.mktemp("chromium")
    downloads = tmp / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in brief.chromium_args(chromium, tmp / "profile")[1:]:
        options.add_argument(argument)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    options.add_argument("--hide-scrollbars")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    service = Service(executable_path=chromedriver, env=brief.chromium_env(tmp))
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except WebDriverException as exc:
        unreachable("chromedriver", exc)
        raise
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver, downloads
    finally:
        driver.quit()


def check_page(driver: Any, name: str) -> None:
    """The page is not blank and axe-core finds no serious or critical violation."""
    # the whole page in one shot (up to a bound), then the window as it was
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, max(HEIGHT, min(int(height) + 140, 2400)))
    png = driver.get_screenshot_as_png()
    driver.set_window_size(WIDTH, HEIGHT)
    image = Image.open(io.BytesIO(png))
    assert_not_blank(image.convert("L"))
    keep = os.environ.get("ACCORD_CONSOLE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        image.convert("RGB").quantize(colors=64).save(Path(keep) / f"{name}.png", optimize=True)
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    violations = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations));"
    )
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{name}: {serious}"


def text_of(driver: Any) -> str:
    """The page's text; "" while a navigation replaces the page under us (the
    body found is gone before its text is read): the caller's poll asks again."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return str(driver.find_element("tag name", "body").text)
    except StaleElementReferenceException:
        return ""


def download(downloads: Path, suffix: str, before: set[Path]) -> Path:
    """The file Chromium finished downloading (no .crdownload left)."""
    found: Path = wait_for(
        f"a {suffix} download",
        lambda: next(
            (p for p in downloads.glob(f"*{suffix}") if p not in before and p.stat().st_size),
            None,
        ),
    )
    return found


def sign_in(driver: Any, console: str, case_ref: str) -> None:
    driver.get(console + "/")
    wait_for("the sign-in page", lambda: driver.current_url.endswith("/signin"))
    driver.find_element("id", "username").send_keys(USER)
    driver.find_element("id", "password").send_keys(PASSWORD)
    driver.find_element("id", "signin").click()
    wait_for("the session page", lambda: driver.current_url.endswith("/session"))
    driver.find_element("id", "case_ref").send_keys(case_ref)
    driver.find_element("id", "start").click()
    wait_for("the first page", lambda: not driver.current_url.endswith("/session"))


def test_a_person_works_through_the_console_and_the_audit_names_them(
    running, console, browser, crown, caplog
):
    caplog.set_level("DEBUG")
    driver, downloads = browser
    case_ref = f"R-E2E-{uuid.uuid4().hex[:8]}"
    fps = rich_person(running)

    # sign in: any page sends an unsigned-in person to the sign-in page
    driver.get(console + "/workbench")
    wait_for("the sign-in page", lambda: driver.current_url.endswith("/signin"))
    check_page(driver, "signin")
    driver.find_element("id", "username").send_keys(USER)
    driver.find_element("id", "password").send_keys(PASSWORD)
    driver.find_element("id", "signin").click()
    wait_for("the session page", lambda: driver.current_url.endswith("/session"))

    # the purpose and case of the session, shown on every page after
    driver.find_element("id", "case_ref").send_keys(case_ref)
    check_page(driver, "session")
    driver.find_element("id", "start").click()
    wait_for("the search page", lambda: driver.current_url.endswith("/search"))
    assert "bail_hearing" in text_of(driver) and case_ref in text_of(driver)
    check_page(driver, "search")

    # a name several systems' files share, each another person: candidates with scores
    driver.find_element("id", "surname").send_keys("Roy-Tremblay")
    driver.find_element("id", "given_names").send_keys("Marie-Ève")
    born = driver.find_element("id", "birth_date")
    driver.execute_script(
        "arguments[0].value = '1988-02-29'", born
    )  # the date picker's locale aside
    driver.find_element("id", "search-name").click()
    wait_for("the candidates", lambda: "Match score" in text_of(driver))
    candidates = driver.find_elements("css selector", "main tbody tr")
    assert len(candidates) >= 4
    check_page(driver, "candidates")
    driver.get(console + "/search")

    # search by FPS number: the history of a person in four or more systems
    driver.find_element("id", "fps_number").send_keys(fps)
    driver.find_element("id", "search-fps").click()
    wait_for("the history", lambda: "Files in" in text_of(driver))
    history = crown.history(fps_number=fps)  # the test's own check, under its own case
    page = text_of(driver)
    assert len({f.source for f in history.files}) >= 4
    for f in history.files:
        assert f.source_person_id in page
    assert fps not in driver.current_url and case_ref in page
    check_page(driver, "history")

    # the printable brief opens in a tab of its own, styled though its CSP allows no inline style
    main_window = driver.current_window_handle
    driver.find_element("xpath", "//button[contains(., 'Printable bail brief')]").click()
    wait_for("the brief's tab", lambda: len(driver.window_handles) == 2)
    driver.switch_to.window(next(h for h in driver.window_handles if h != main_window))
    wait_for("the brief", lambda: driver.title.startswith("Bail brief"))
    colour = driver.find_element("tag name", "h1").value_of_css_property("color")
    assert colour == "rgba(31, 58, 147, 1)", colour  # #1f3a93: the stylesheet applied
    check_page(driver, "brief")
    driver.close()
    driver.switch_to.window(main_window)

    # the brief as PDF: a download of at most two pages
    before = set(downloads.iterdir())
    driver.find_element("xpath", "//button[contains(., 'as PDF')]").click()
    pdf = download(downloads, ".pdf", before)
    reader = pypdf.PdfReader(pdf)
    assert 1 <= len(reader.pages) <= MAX_PAGES
    assert history.identity["surname"] in " ".join(p.extract_text() for p in reader.pages)

    # the workbench: the role's catalog, a query over two pages, Explain, export
    driver.get(console + "/workbench")
    wait_for("the workbench", lambda: "Catalog of role crown_attorney" in text_of(driver))
    sql = driver.find_element("id", "sql")
    sql.send_keys("SELECT source, fps_number, surname FROM offenders ORDER BY source, fps_number")
    driver.find_element("id", "run").click()
    wait_for("the first page", lambda: "page 1 · 50 row(s)" in text_of(driver))
    check_page(driver, "workbench")
    driver.find_element("id", "next-page").click()
    wait_for("the second page", lambda: "page 2 · 50 row(s)" in text_of(driver))
    driver.find_element("id", "explain").click()
    wait_for("the plan", lambda: "Rewritten" in text_of(driver))
    check_page(driver, "explain")
    before = set(downloads.iterdir())
    driver.find_element("id", "export").click()
    exported = download(downloads, ".csv", before)
    rows = list(csv.reader(exported.read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["source", "fps_number", "surname"]
    count = crown.query("SELECT count(*) AS n FROM offenders").table.column("n")[0].as_py()
    assert len(rows) - 1 == count
    Select(driver.find_element("id", "format")).select_by_value("parquet")
    before = set(downloads.iterdir())
    driver.find_element("id", "export").click()
    table = pq.read_table(download(downloads, ".parquet", before))
    assert table.column_names == rows[0] and table.num_rows == count

    # a denied column: the broker's refusal, in its own words
    sql = driver.find_element("id", "sql")
    sql.clear()
    sql.send_keys("SELECT address FROM offenders")
    driver.find_element("id", "run").click()
    alert = wait_for(
        "the refusal",
        lambda: [e for e in driver.find_elements("css selector", "[role=alert]") if e.text],
    )
    assert "PERMISSION_DENIED" in alert[0].text and "address" in alert[0].text
    check_page(driver, "refusal")

    # the audit names the person at every step, the export as such
    records = list(search(running.workdir.audit_dir(), case_ref=case_ref))
    by_user = {(r["event"], r.get("outcome"), r["end_user"]) for r in records}
    # the name search, the history page, the brief and its PDF: each asked again
    assert sum(1 for r in records if r["event"] == "history" and r["end_user"] == USER) == 4
    assert ("explain", "OK", USER) in by_user
    assert ("query", "STARTED", USER) in by_user
    assert ("query", "STARTED", f"{USER} [export csv]") in by_user
    assert ("query", "PERMISSION_DENIED", USER) in by_user
    assert ("query", "STARTED", f"{USER} [export parquet]") in by_user
    assert {r["end_user"] for r in records} == {
        USER,
        f"{USER} [export csv]",
        f"{USER} [export parquet]",
    }
    # retention: the person asked about is in no log line of the console (the
    # test's own WebDriver client logs what it types: not the console's)
    lines = [
        r.getMessage() + repr(r.__dict__)
        for r in caplog.records
        if not r.name.startswith(("selenium", "urllib3"))
    ]
    assert any("console sign-in" in line for line in lines)
    assert not [line for line in lines if fps in line or history.identity["surname"] in line]


def test_the_aggregate_builder_shows_suppressed_cells_as_suppressed(
    running, statistics_console, browser
):
    driver, _ = browser
    case_ref = f"R-E2E-{uuid.uuid4().hex[:8]}"
    sign_in(driver, statistics_console, case_ref)
    driver.get(statistics_console + "/aggregate")
    wait_for("the builder", lambda: "Aggregate builder" in text_of(driver))
    Select(driver.find_element("id", "table")).select_by_value("offenders")
    Select(driver.find_element("id", "dim1")).select_by_value("source")
    Select(driver.find_element("id", "dim2")).select_by_value("status")
    driver.find_element("id", "build").click()
    wait_for("the grid", lambda: driver.find_elements("id", "grid"))
    cells = driver.find_elements("css selector", "#grid td.suppressed")
    released = [
        e.text for e in driver.find_elements("css selector", "#grid td") if e.text != "suppressed"
    ]
    assert cells and all(c.text == "suppressed" for c in cells)
    assert released and all(int(v) % 5 == 0 for v in released)  # rounded to base 5
    check_page(driver, "aggregate")
    records = list(search(running.workdir.audit_dir(), case_ref=case_ref))
    assert any(r["event"] == "query" and r["end_user"] == USER for r in records)
