"""The bail brief's content and HTML (app/brief.py), from hand-made
histories: what each section keeps and cuts, sources on every fact,
escaping, a self-contained page. Chromium's rendering is
tests/integration/test_brief.py."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.v1 import broker_pb2
from app import brief
from app.timeline_chart import timeline_svg
from tests.brief_histories import entry, history

WHEN = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def sections(h: broker_pb2.HistoryResponse) -> dict[str, brief.Section]:
    return {s.title.split(" (")[0]: s for s in brief.build(h).sections}


def expected_counts(h: broker_pb2.HistoryResponse) -> dict[str, int]:
    """The rows each section should hold, counted from the timeline directly."""
    t = list(h.timeline)
    offences = {
        (e.source, e.source_person_id, e.fields["offence_code"]) for e in t if e.kind == "sentenced"
    }
    return {
        "Convictions by jurisdiction and offence": len(offences),
        "Breaches of release conditions and revocations": sum(
            e.kind == "release" and e.fields["status"] in ("REVOKED", "SUSPENDED") for e in t
        ),
        "Violent incidents": sum(
            e.kind == "incident" and e.fields["incident_type"] in ("ASSAULT", "THREAT") for e in t
        ),
        "Alerts": sum(e.kind == "alert" for e in t),
        "Current status in every jurisdiction": len(h.files),
    }


@settings(max_examples=40, deadline=None)
@given(facts=st.integers(0, 30), seed=st.integers(0, 10_000))
def test_each_section_keeps_its_limit_and_counts_the_rest(facts, seed):
    """Kept rows plus the "N more" count are every qualifying fact, counted a second way."""
    h = history(facts_per_source=facts, seed=seed)
    got = sections(h)
    limits = dict(
        zip(
            expected_counts(h),
            ("convictions", "breaches", "incidents", "alerts", "status"),
            strict=True,
        )
    )
    for title, total in expected_counts(h).items():
        section = got[title]
        assert len(section.rows) == min(total, brief.LIMITS[limits[title]])
        assert len(section.rows) + section.more == total


def test_every_fact_names_its_system_and_file_number():
    h = history(facts_per_source=3)
    files = {(f.source, f.source_person_id) for f in h.files}
    for section in brief.build(h).sections:
        if "source" not in section.columns:
            continue
        s, f = section.columns.index("source"), section.columns.index("file")
        for row in section.rows:
            assert (row[s], row[f]) in files, (section.title, row)


def test_current_statuses_come_first_ual_before_custody_before_supervised():
    status = sections(history())["Current status in every jurisdiction"]
    assert [row[2] for row in status.rows[:3]] == ["UAL", "IN_CUSTODY", "SUPERVISED"]


def test_facts_are_most_recent_first():
    for title in ("Breaches of release conditions and revocations", "Alerts"):
        dates = [row[0] for row in sections(history(facts_per_source=8))[title].rows]
        assert dates == sorted(dates, reverse=True) and dates


def test_a_hostile_name_is_escaped_everywhere():
    h = history(surname=HOSTILE, given_names=HOSTILE)
    h.files[0].source_person_id = HOSTILE  # in the tables and the chart's lane labels
    h.timeline.append(entry("2020-01-01", "alert", "alerts", "BC", HOSTILE, notes=HOSTILE))
    page = brief.as_html(h, WHEN)
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;img src=x" in page
    assert brief.as_tables(h).count("<script>") >= 1  # the terminal shows it as text
    svg = timeline_svg(h.timeline)
    ET.fromstring(svg)  # still well-formed XML
    assert "<script" not in svg


def test_the_page_is_self_contained_and_has_no_script():
    page = brief.as_html(history(), WHEN)
    assert "<script" not in page.lower()
    assert not re.search(r"""\b(src|href)\s*=|url\(|@import""", page, re.IGNORECASE)
    # the SVG namespace is the only address in the page
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"]
    assert "@page" in page and "<svg" in page


def test_the_chart_has_a_lane_per_file_and_a_mark_per_dated_fact():
    h = history(facts_per_source=2)
    svg = ET.fromstring(timeline_svg(h.timeline))
    ns = "{http://www.w3.org/2000/svg}"
    labels = {t.text for t in svg.iter(f"{ns}text")}
    assert {f"{f.source} {f.source_person_id}" for f in h.files} <= labels
    incidents = sum(e.kind == "incident" for e in h.timeline)
    assert len(list(svg.iter(f"{ns}circle"))) == incidents + 1  # and one in the legend


def test_no_dated_fact_no_chart():
    h = history(facts_per_source=0)
    assert timeline_svg(h.timeline) == ""
    assert "<svg" not in brief.as_html(h, WHEN)


def test_a_table_the_role_does_not_see_says_so_rather_than_none():
    h = history(facts_per_source=1)
    aliases = sections(h)["Aliases"]
    assert aliases.absent and not aliases.rows
    assert "Not visible to this role" in brief.as_html(h, WHEN)
    assert "not visible to this role" in brief.as_tables(h)


def test_an_empty_history_is_labelled_not_found():
    h = broker_pb2.HistoryResponse(history_id="h-1", role="crown_attorney", found=False)
    h.notes.append("no file carries FPS number 7654321A")
    page = brief.as_html(h, WHEN)
    assert "No history found" in page and "7654321A" in page
    assert "found" in brief.as_tables(h)


def test_possible_matches_are_listed_apart_with_their_probability():
    h = history(facts_per_source=1)
    h.possible_matches.append(
        broker_pb2.HistoryFile(
            source="QC",
            source_person_id="QC-9",
            link=broker_pb2.LINK_METHOD_POSSIBLE,
            match_probability=0.734,
            fields={"surname": "Tremblai", "given_names": "Marie", "birth_date": "1980-02-29"},
        )
    )
    possible = sections(h)["Possible matches"]
    assert possible.rows == [("Tremblai", "Marie", "1980-02-29", "QC", "QC-9", "0.734")]


def fake_chromium(tmp_path: Path, body: str) -> str:
    """An executable standing in for chromium: ``body`` is its shell script."""
    script = tmp_path / "chromium"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


PRINTS = 'for a; do case "$a" in --print-to-pdf=*) printf "%%PDF-1.4 fake" > "${a#*=}";; esac; done'


def test_print_pdf_writes_only_out_and_leaves_no_temporary_folder(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    out = tmp_path / "brief.pdf"
    brief.print_pdf("<p>x</p>", out, fake_chromium(tmp_path, PRINTS))
    assert out.read_bytes() == b"%PDF-1.4 fake"
    assert list(scratch.iterdir()) == []  # the profile and the page are gone


def test_a_chromium_that_fails_is_a_clear_error_and_writes_nothing(tmp_path):
    chromium = fake_chromium(tmp_path, 'echo "cannot open display" >&2; exit 3')
    out = tmp_path / "brief.pdf"
    with pytest.raises(brief.BriefError, match=r"failed to print the brief \(3\): cannot open"):
        brief.print_pdf("<p>x</p>", out, chromium)
    assert not out.exists()


def test_a_chromium_that_hangs_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(brief, "PRINT_TIMEOUT_S", 0.5)
    with pytest.raises(brief.BriefError, match="did not print the brief"):
        brief.print_pdf("<p>x</p>", tmp_path / "b.pdf", fake_chromium(tmp_path, "exec sleep 30"))


def test_no_chromium_on_path_says_how_to_get_one(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(brief.BriefError, match="apt-get install chromium"):
        brief.find_chromium()


def test_warrant_expiry_is_the_files_else_the_latest_of_its_sentences():
    h = history(facts_per_source=0)
    h.files[0].fields["warrant_expiry_date"] = "2031-05-01"
    for date in ("2027-01-02", "2029-03-04"):  # BC's file shows only its sentences' expiries
        h.timeline.append(entry(date, "warrant_expiry", "sentences", "BC", "BC-1001"))
    status = sections(h)["Current status in every jurisdiction"]
    column = status.columns.index("warrant expiry")
    expiry = {row[0]: row[column] for row in status.rows}
    assert expiry["CA-CSC"] == "2031-05-01" and expiry["BC"] == "2029-03-04"
    assert expiry["ON"] == ""


def test_a_partial_history_says_so_before_anything_else():
    h = history(facts_per_source=1)
    h.partial = True
    h.notes.append("QC did not answer: its files are missing")
    page = brief.as_html(h, WHEN)
    assert page.index("PARTIAL") < page.index("<h2>Identity")
    assert brief.as_tables(h).startswith("PARTIAL")
    h.partial = False
    assert "PARTIAL" not in brief.as_html(h, WHEN)
