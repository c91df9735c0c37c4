"""The bail brief in a real headless Chromium: a person in four or more
systems, fetched over the running federation (real gRPC, real mTLS) and
rendered by ``accord history --format html|pdf``; the page renders and its
screenshot is not blank, the PDF is at most two pages and names the source
of its facts, and a long history is cut to stay within two pages.

Without ``chromium`` on PATH these skip locally and fail under CI=true.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

import pypdf
import pytest
from PIL import Image, ImageStat

from accord.audit.search import search
from adapters.datagen import person_truth
from app import brief
from app.cli import main
from tests.brief_histories import worst_case
from tests.integration.conftest import SCALE, SEED
from tests.integration.servers import unreachable

if TYPE_CHECKING:
    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

#: The bound of the issue: a brief is at most two pages.
MAX_PAGES = 2
#: Tables whose rows are the brief's facts.
FACT_TABLES = ("sentences", "releases", "incidents", "alerts")


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return brief.find_chromium()
    except brief.BriefError as exc:
        unreachable("chromium", exc)
        raise


def rich_person(running: Running) -> str:
    """The FPS number of the person in the most systems (four or more) with the most facts."""
    truth = person_truth(running.federation, seed=SEED, scale=SCALE)
    systems: dict[str, set[str]] = collections.defaultdict(set)
    facts: collections.Counter[str] = collections.Counter()
    for code, tables in running.generated.items():
        for row in tables["offenders"].to_pylist():
            fps = truth.get((code, row["source_person_id"]))
            if fps is not None and row["fps_number"] == fps:
                systems[fps].add(code)
        for table in FACT_TABLES:
            if table in tables:
                for row in tables[table].to_pylist():
                    if row["fps_number"]:
                        facts[row["fps_number"]] += 1
    best = max(systems, key=lambda fps: (len(systems[fps]), facts[fps], fps))
    assert len(systems[best]) >= 4
    return best


@pytest.fixture(scope="module")
def person(running: Running) -> str:
    return rich_person(running)


def cli(running: Running, fps: str, *extra: str, case_ref: str = "R-2026-0042") -> int:
    return main(
        [
            "history",
            "--fps",
            fps,
            "--as",
            "crown_attorney",
            "--purpose",
            "bail_hearing",
            "--case-ref",
            case_ref,
            "--workdir",
            str(running.workdir.path),
            *extra,
        ]
    )


def screenshot(chromium: str, page: Path, png: Path, tmp: Path) -> Image.Image:
    command = [
        *brief.chromium_args(chromium, tmp / "profile"),
        "--hide-scrollbars",
        "--window-size=900,1600",
        f"--screenshot={png}",
        page.as_uri(),
    ]
    env = brief.chromium_env(tmp)
    done = subprocess.run(command, capture_output=True, timeout=120, check=False, env=env)
    assert done.returncode == 0 and png.is_file(), done.stderr.decode(errors="replace")[-500:]
    return Image.open(png).convert("L")


def pdf_text(reader: pypdf.PdfReader) -> str:
    """The PDF's text, its ligatures (the "ff" of "offence") undone and its lines joined."""
    text = unicodedata.normalize("NFKC", " ".join(p.extract_text() for p in reader.pages))
    return " ".join(text.split())


def assert_not_blank(image: Image.Image) -> None:
    """Ink on paper: the grey levels vary, and some pixels are text-dark."""
    stat = ImageStat.Stat(image)
    assert stat.stddev[0] > 15, stat.stddev
    histogram = image.histogram()
    dark = sum(histogram[:100]) / (image.width * image.height)
    assert dark > 0.005, dark


def test_the_html_brief_renders_in_chromium_and_is_not_blank(running, person, chromium, tmp_path):
    page = tmp_path / "brief.html"
    assert cli(running, person, "--format", "html", "--out", str(page)) == 0
    text = page.read_text(encoding="utf-8")
    assert person in text and "<svg" in text and "<script" not in text
    image = screenshot(chromium, page, tmp_path / "brief.png", tmp_path)
    assert_not_blank(image)


def test_the_pdf_brief_is_at_most_two_pages_and_names_its_sources(
    running, crown, person, chromium, tmp_path
):
    pdf = tmp_path / "brief.pdf"
    assert cli(running, person, "--format", "pdf", "--out", str(pdf)) == 0
    reader = pypdf.PdfReader(pdf)
    assert 1 <= len(reader.pages) <= MAX_PAGES
    text = pdf_text(reader)
    history = crown.history(fps_number=person)
    assert len({f.source for f in history.files}) >= 4
    for f in history.files:  # every system's file, by its own number
        assert f.source in text and f.source_person_id in text, f.source_person_id
    assert history.identity["surname"] in text
    for section in brief.build(history).sections:  # the PDF holds every section
        assert section.title.split(" (")[0] in text, section.title
    # no header or footer naming the temporary page Chromium printed
    metadata = " ".join(str(v) for v in (reader.metadata or {}).values())
    assert not any(leak in text + metadata for leak in ("file:", "accord-brief-", "/tmp"))
    # nothing but the PDF asked for is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["brief.pdf"]


def test_a_long_history_is_cut_to_two_pages(chromium, tmp_path):
    """Every section over its limit, every cell long, 18 files, a dozen notes."""
    h = worst_case()
    pdf = tmp_path / "long.pdf"
    brief.print_pdf(brief.as_html(h), pdf, chromium)
    reader = pypdf.PdfReader(pdf)
    assert len(reader.pages) <= MAX_PAGES
    text = pdf_text(reader)
    assert "more entries in the full history" in text


def test_pdf_without_out_or_chromium_is_refused_before_asking(running, person, capsys):
    refused = "R-BRIEF-REFUSED"
    assert cli(running, person, "--format", "pdf", case_ref=refused) != 0
    assert "--out" in capsys.readouterr().err
    assert cli(running, person, "--out", "x.txt", case_ref=refused) != 0  # --format table
    assert "--out writes --format html or pdf" in capsys.readouterr().err
    path = os.environ.get("PATH", "")
    try:
        os.environ["PATH"] = "/nonexistent"
        assert shutil.which("chromium") is None
        out = "/nonexistent/x.pdf"
        assert cli(running, person, "--format", "pdf", "--out", out, case_ref=refused) != 0
        assert "chromium not found" in capsys.readouterr().err
    finally:
        os.environ["PATH"] = path
    # no history was asked, so none was audited
    assert not list(search(running.workdir.audit_dir(), case_ref=refused))


def test_the_terminal_brief_shows_the_same_sections_as_tables(running, crown, person, capsys):
    assert cli(running, person, "--format", "brief") == 0
    text = capsys.readouterr().out
    built = brief.build(crown.history(fps_number=person))
    for section in built.sections:
        assert section.title in text
        for row in section.rows:
            assert row[section.columns.index("file")] in text
    assert "<" not in text  # tables, not markup


def test_printing_writes_nothing_but_the_pdf(chromium, tmp_path, monkeypatch, request):
    """Retention: Chromium's profile, cache and the page it prints leave no trace
    in the home folder or the temporary folder."""
    home = tmp_path / "home"
    home.mkdir()
    # short: Chromium's sockets live under TMPDIR, and a Unix socket's path is at most 108 bytes
    scratch = Path(tempfile.mkdtemp(prefix="ab-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    monkeypatch.setenv("HOME", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    out = tmp_path / "brief.pdf"
    brief.print_pdf(brief.as_html(worst_case(facts_per_source=2)), out, chromium)
    assert out.stat().st_size > 1000
    left = [str(p) for p in (*home.rglob("*"), *scratch.rglob("*"))]
    assert left == []
