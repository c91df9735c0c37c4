"""The bail brief: one person's history as a printable brief of at most two
pages (HTML, PDF through headless Chromium) or as terminal tables.

Rendered from the ``HistoryResponse`` alone (no query of its own), so it
shows exactly what the caller's role may see. Every fact names its system
and that system's file number. Each section keeps its most relevant rows
(current before old, most recent first) up to a fixed number and says how
many more the full history holds, which is what keeps a long history within
two pages (``LIMITS``).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import markupsafe
from rich.console import Console
from rich.table import Table

from accord.errors import AccordError
from app import history_view
from app.timeline_chart import timeline_svg

if TYPE_CHECKING:
    from collections.abc import Sequence

    from accord.v1 import broker_pb2

#: Rows each section keeps at most; the rest is counted in its last line.
LIMITS = {
    "aliases": 5,
    "status": 8,
    "convictions": 10,
    "breaches": 6,
    "incidents": 6,
    "alerts": 6,
    "possible": 3,
    "notes": 4,
}
#: A cell longer than this (a long list of conditions, a note) is clipped with an ellipsis.
CELL_CHARS = 100
#: Columns of short values kept on one line (a date does not wrap).
SHORT_COLUMNS = frozenset(
    {"date", "source", "file", "first", "last", "born", "times", "latest sentence", "status"}
)
#: Statuses that are current, in the order a bail hearing reads them.
CURRENT = ("UAL", "IN_CUSTODY", "SUPERVISED")
#: A release that ended in a breach: revoked, or suspended (the person unlawfully at large).
BREACHES = frozenset({"REVOKED", "SUSPENDED"})
#: Incident types that are violence against a person.
VIOLENT_INCIDENTS = frozenset({"ASSAULT", "THREAT"})
PARTIAL = (
    "PARTIAL: some system did not answer; this brief may miss its files (see the notes below)."
)
#: How long Chromium may take to print one brief.
PRINT_TIMEOUT_S = 60.0

_TEMPLATES = Path(__file__).with_name("templates")


class BriefError(AccordError):
    """The brief cannot be written (no Chromium, or it failed to print)."""


@dataclass(frozen=True)
class Section:
    """One table of the brief: its rows kept, and how many more were cut."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    more: int = 0
    note: str = ""
    #: The role does not see the table this section reads: nothing, rather than "none".
    absent: bool = False


@dataclass(frozen=True)
class Brief:
    identity: list[tuple[str, str]]
    sections: list[Section]
    chart_svg: str
    footer: list[str] = field(default_factory=list)
    found: bool = True
    #: Shown first: some system did not answer.
    warning: str = ""


def _clip(text: str) -> str:
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1].rstrip() + "\u2026"


def _cut(
    title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]], key: str
) -> Section:
    limit = LIMITS[key]
    kept = [tuple(_clip(cell) for cell in row) for row in rows[:limit]]
    # A column empty in every row kept (one the role does not see) takes no room.
    shown = [
        i
        for i, column in enumerate(columns)
        if not kept or column in ("source", "file") or any(row[i] for row in kept)
    ]
    return Section(
        title,
        tuple(columns[i] for i in shown),
        [tuple(row[i] for i in shown) for row in kept],
        max(0, len(rows) - limit),
    )


def _newest_first(entries: list[broker_pb2.TimelineEntry]) -> list[broker_pb2.TimelineEntry]:
    # Undated entries ("" sorts first) go last.
    return sorted(entries, key=lambda e: e.date or "0", reverse=True)


def _status(history: broker_pb2.HistoryResponse) -> Section:
    def rank(f: broker_pb2.HistoryFile) -> tuple[int, str]:
        status = f.fields.get("status", "")
        return (CURRENT.index(status) if status in CURRENT else len(CURRENT), f.source)

    # The file's own warrant expiry, else the latest of its sentences' (a role
    # may see the sentences and not that column of the file).
    expiries: dict[tuple[str, str], str] = {}
    for e in history.timeline:
        if e.kind == "warrant_expiry" and e.date:
            key = (e.source, e.source_person_id)
            expiries[key] = max(expiries.get(key, ""), e.date)
    rows = [
        (
            f.source,
            f.source_person_id,
            f.fields.get("status", "-"),
            f.fields.get("supervising_jurisdiction", ""),
            f.fields.get("assigned_facility", ""),
            f.fields.get("security_level", ""),
            f.fields.get("warrant_expiry_date") or expiries.get((f.source, f.source_person_id), ""),
            f.fields.get("planned_release_date", ""),
            history_view.link_label(f),
        )
        for f in sorted(history.files, key=rank)
    ]
    columns = (
        "source",
        "file",
        "status",
        "supervised by",
        "facility",
        "security",
        "warrant expiry",
        "planned release",
        "link",
    )
    return _cut("Current status in every jurisdiction", columns, rows, "status")


def _convictions(history: broker_pb2.HistoryResponse) -> Section:
    groups: dict[tuple[str, str, str], list[broker_pb2.TimelineEntry]] = collections.defaultdict(
        list
    )
    for e in history.timeline:
        if e.kind == "sentenced":
            offence = " ".join(
                v for v in (e.fields.get("offence_code"), e.fields.get("offence_description")) if v
            )
            groups[(e.source, e.source_person_id, offence or "-")].append(e)

    def latest(item: tuple[tuple[str, str, str], list[broker_pb2.TimelineEntry]]) -> str:
        return max(e.date or "0" for e in item[1])

    rows = []
    for (source, file, offence), entries in sorted(groups.items(), key=latest, reverse=True):
        # Bounded cells: a long history must not grow a row (first, last, latest term).
        dates = sorted(e.date for e in entries if e.date)
        newest = _newest_first(entries)[0]
        rows.append(
            (
                source,
                file,
                offence,
                str(len(entries)),
                dates[0] if dates else "undated",
                dates[-1] if dates else "undated",
                _term(newest),
            )
        )
    columns = ("source", "file", "offence", "times", "first", "last", "latest sentence")
    return _cut("Convictions by jurisdiction and offence", columns, rows, "convictions")


def _term(e: broker_pb2.TimelineEntry) -> str:
    days = e.fields.get("length_days")
    kind = e.fields.get("sentence_type", "")
    length = f"{days} days" if days else ("life" if kind == "CUSTODY" else "")
    return " ".join(p for p in (length, kind) if p)


def _breaches(history: broker_pb2.HistoryResponse) -> Section:
    entries = [
        e
        for e in history.timeline
        if e.kind == "release" and e.fields.get("status", "") in BREACHES
    ]
    rows = [
        (
            e.date or "undated",
            e.source,
            e.source_person_id,
            e.fields.get("release_type", ""),
            e.fields.get("status", ""),
            e.fields.get("conditions", ""),
        )
        for e in _newest_first(entries)
    ]
    columns = ("date", "source", "file", "release", "outcome", "conditions")
    return _cut("Breaches of release conditions and revocations", columns, rows, "breaches")


def _incidents(history: broker_pb2.HistoryResponse) -> Section:
    incidents = [e for e in history.timeline if e.kind == "incident"]
    violent = [e for e in incidents if e.fields.get("incident_type", "") in VIOLENT_INCIDENTS]
    rows = [
        (
            e.date or "undated",
            e.source,
            e.source_person_id,
            e.fields.get("incident_type", ""),
            e.fields.get("institution", ""),
            e.fields.get("summary", ""),
        )
        for e in _newest_first(violent)
    ]
    columns = ("date", "source", "file", "type", "institution", "summary")
    section = _cut("Violent incidents", columns, rows, "incidents")
    others = len(incidents) - len(violent)
    if not others:
        return section
    kinds = sorted({e.fields.get("incident_type", "?") for e in incidents} - VIOLENT_INCIDENTS)
    note = f"{others} other incident(s) on record ({', '.join(kinds)})."
    return Section(section.title, section.columns, section.rows, section.more, note)


def _alerts(history: broker_pb2.HistoryResponse) -> Section:
    rows = [
        (
            e.date or "undated",
            e.source,
            e.source_person_id,
            e.fields.get("alert_type", ""),
            e.fields.get("notes", ""),
        )
        for e in _newest_first([e for e in history.timeline if e.kind == "alert"])
    ]
    return _cut("Alerts", ("date", "source", "file", "type", "notes"), rows, "alerts")


def _aliases(history: broker_pb2.HistoryResponse) -> Section:
    rows = [(a.surname, a.given_names, a.source, a.source_person_id) for a in history.aliases]
    return _cut("Aliases", ("surname", "given names", "source", "file"), rows, "aliases")


def _possible(history: broker_pb2.HistoryResponse) -> Section:
    rows = [
        (
            f.fields.get("surname", ""),
            f.fields.get("given_names", ""),
            f.fields.get("birth_date", ""),
            f.source,
            f.source_person_id,
            f"{f.match_probability:.3f}",
        )
        for f in history.possible_matches
    ]
    columns = ("surname", "given names", "born", "source", "file", "probability")
    return _cut(
        "Possible matches (not merged: verify before relying on them)", columns, rows, "possible"
    )


def build(history: broker_pb2.HistoryResponse) -> Brief:
    """The brief's content, from the history alone."""
    keys = ("fps_number", "surname", "given_names", "birth_date", "birth_place", "gender")
    identity = [(k.replace("_", " "), history.identity[k]) for k in keys if k in history.identity]
    footer = [f"Not visible to role {history.role}: {t}" for t in history.tables_absent]
    notes = [_clip(n) for n in history.notes]
    footer += notes[: LIMITS["notes"]]
    if len(notes) > LIMITS["notes"]:
        footer.append(f"{len(notes) - LIMITS['notes']} more notes in the full history.")
    warning = PARTIAL if history.partial else ""
    if not history.found:
        return Brief(identity, [], "", footer, found=False, warning=warning)
    sections = [
        dataclasses.replace(section, absent=table in history.tables_absent)
        for table, section in (
            ("aliases", _aliases(history)),
            ("offenders", _status(history)),
            ("sentences", _convictions(history)),
            ("releases", _breaches(history)),
            ("incidents", _incidents(history)),
            ("alerts", _alerts(history)),
        )
    ]
    if history.possible_matches:
        sections.append(_possible(history))
    return Brief(identity, sections, timeline_svg(history.timeline), footer, warning=warning)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,  # every value comes from data: names, notes, summaries
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def as_html(history: broker_pb2.HistoryResponse, generated: dt.datetime | None = None) -> str:
    """The brief as one self-contained HTML page (inline CSS and SVG, no script)."""
    when = generated or dt.datetime.now(dt.UTC)
    brief = build(history)
    return (
        _environment()
        .get_template("brief.html.j2")
        .render(
            brief=brief,
            history=history,
            generated=when.strftime("%Y-%m-%d %H:%M UTC"),
            more_line=more_line,
            short=SHORT_COLUMNS,
            # The chart is markup the project draws, escaping every text it holds.
            chart=markupsafe.Markup(brief.chart_svg),  # noqa: S704
        )
    )


def find_chromium() -> str:
    """Debian's ``chromium`` (or Google's build) on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise BriefError(
        "chromium not found on PATH: a PDF is printed by headless Chromium "
        "(Debian: apt-get install chromium); --format html needs nothing"
    )


def chromium_args(chromium: str, profile: Path) -> list[str]:
    """Headless, with a throw-away profile (and chromium_env for its home)."""
    return [
        chromium,
        "--headless",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-crash-reporter",
        f"--user-data-dir={profile}",
    ]


def print_pdf(html: str, out: Path, chromium: str | None = None) -> None:
    """Print the brief to ``out`` with headless Chromium. Its profile and the
    page live in a private temporary folder removed before this returns."""
    binary = chromium or find_chromium()
    with tempfile.TemporaryDirectory(prefix="accord-brief-") as tmp:
        page = Path(tmp) / "brief.html"
        page.write_text(html, encoding="utf-8")
        pdf = Path(tmp) / "brief.pdf"
        command = [
            *chromium_args(binary, Path(tmp) / "profile"),
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        returncode, stderr = _run(command, chromium_env(Path(tmp)))
        if returncode != 0 or not pdf.is_file() or pdf.stat().st_size == 0:
            tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise BriefError(f"chromium failed to print the brief ({returncode}): {tail[0]}")
        out.write_bytes(pdf.read_bytes())


def chromium_env(tmp: Path) -> dict[str, str]:
    """Chromium's environment with its home in ``tmp``: it writes crash-report
    settings under ~/.config and a dconf cache under ~/.cache whatever its
    profile folder, and nothing of a brief may stay behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    home = tmp / "home"
    home.mkdir()
    # TMPDIR stays: Chromium removes what it makes there, and a deep one would
    # make its socket paths too long for a Unix socket (108 bytes).
    env["HOME"] = str(home)
    return env


def _run(command: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run Chromium in a session of its own, so a hung one is stopped with
    every process it started (renderer, GPU, zygote)."""
    with subprocess.Popen(  # noqa: S603 (our own arguments, no shell)
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    ) as process:
        try:
            _, stderr = process.communicate(timeout=PRINT_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise BriefError(f"chromium did not print the brief in {PRINT_TIMEOUT_S:g} s") from exc
    return process.returncode, stderr


def _rich_table(section: Section) -> Table:
    table = Table(title=section.title, title_justify="left")
    for column in section.columns:
        table.add_column(column, overflow="fold")
    for row in section.rows:
        table.add_row(*row)
    if not section.rows:
        table.add_row(empty_line(section), *([""] * (len(section.columns) - 1)))
    if section.more:
        table.caption = more_line(section.more)
    return table


def empty_line(section: Section) -> str:
    return "not visible to this role" if section.absent else "none on record"


def more_line(n: int) -> str:
    return f"{n} more entries in the full history (accord history --format table)"


def as_tables(history: broker_pb2.HistoryResponse, width: int = 140) -> str:
    """The brief's sections as plain-text tables (the chart is the HTML's alone)."""
    brief = build(history)
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    if brief.warning:
        console.print(brief.warning)
    person = Table(title="Bail brief", show_header=False, box=None, title_justify="left")
    for key, value in brief.identity:
        person.add_row(key, value)
    if not brief.found:
        person.add_row("found", "no: see accord history --format table")
    console.print(person)
    for section in brief.sections:
        console.print(_rich_table(section))
        if section.note:
            console.print(section.note)
    for line in brief.footer:
        console.print(line)
    console.print(f"history {history.history_id} ({history.role}, {history.purpose})")
    return out.getvalue().rstrip()
