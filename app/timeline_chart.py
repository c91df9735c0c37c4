"""The bail brief's timeline chart: an inline SVG the project draws.

One lane per system and file, years along the bottom; a sentence served is
a bar from its start for its length, every other fact a mark of its kind.
Drawn here rather than with matplotlib because the chart is a few dozen
shapes: the SVG stays a few kilobytes of plain text (matplotlib's embeds
its glyphs as paths), is the same for the same history, and every text in
it goes through one escape.
"""

from __future__ import annotations

import collections
import datetime as dt
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from accord.v1 import broker_pb2

WIDTH = 720
LANE = 18
LEFT = 118  # room for "SOURCE file" labels
RIGHT = 10
TOP = 8
AXIS = 18
LEGEND = 18
#: Kind -> (label, colour, shape). Colours read in greyscale too (print).
MARKS: dict[str, tuple[str, str, str]] = {
    "sentenced": ("sentenced", "#1f3a93", "square"),
    "release": ("release", "#2e7d32", "triangle"),
    "incident": ("incident", "#c62828", "circle"),
    "alert": ("alert", "#ef6c00", "diamond"),
    "warrant_expiry": ("warrant expiry", "#555555", "tick"),
}
BAR_COLOUR = "#90a4d4"
#: Files charted at most (one lane each), so the chart's height is bounded.
MAX_LANES = 10
#: Bars cover the sentence served: custody's start and sentence_start facts.
BAR_KINDS = frozenset({"custody", "sentence_start"})


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _length(entry: broker_pb2.TimelineEntry) -> int:
    try:
        return max(0, int(entry.fields.get("length_days", "0")))
    except ValueError:
        return 0


def _shape(kind: str, x: float, y: float, colour: str) -> str:
    if kind == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{colour}"/>'
    if kind == "triangle":
        points = f"{x:.1f},{y - 4:.1f} {x + 4:.1f},{y + 3:.1f} {x - 4:.1f},{y + 3:.1f}"
        return f'<polygon points="{points}" fill="{colour}"/>'
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>'
    if kind == "diamond":
        points = f"{x:.1f},{y - 4:.1f} {x + 4:.1f},{y:.1f} {x:.1f},{y + 4:.1f} {x - 4:.1f},{y:.1f}"
        return f'<polygon points="{points}" fill="{colour}"/>'
    return (
        f'<line x1="{x:.1f}" y1="{y - 5:.1f}" x2="{x:.1f}" y2="{y + 5:.1f}" '
        f'stroke="{colour}" stroke-width="2"/>'
    )


def _lanes(entries: Iterable[broker_pb2.TimelineEntry]) -> list[tuple[str, str]]:
    """The files, those with the most dated facts first (they are charted first)."""
    count = collections.Counter((e.source, e.source_person_id) for e in entries)
    return sorted(count, key=lambda lane: (-count[lane], lane))


def timeline_svg(timeline: Sequence[broker_pb2.TimelineEntry]) -> str:
    """The chart of the dated entries, or "" when none is dated."""
    dated = [(d, e) for e in timeline if (d := _date(e.date)) is not None]
    if not dated:
        return ""
    every_lane = _lanes(e for _, e in dated)
    lanes = every_lane[:MAX_LANES]
    dated = [(d, e) for d, e in dated if (e.source, e.source_person_id) in lanes]
    first = min(d for d, _ in dated)
    ends = [d + dt.timedelta(days=_length(e)) for d, e in dated if e.kind in BAR_KINDS]
    last = max([d for d, _ in dated] + ends)
    start, end = dt.date(first.year, 1, 1), dt.date(last.year + 1, 1, 1)
    span = (end - start).days
    plot = WIDTH - LEFT - RIGHT

    def x(day: dt.date) -> float:
        return LEFT + plot * min(max((day - start).days, 0), span) / span

    height = TOP + LANE * len(lanes) + AXIS + LEGEND
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="Timeline of the history" '
        f'font-family="sans-serif" font-size="9">'
    ]
    bottom = TOP + LANE * len(lanes)
    step = max(1, round((end.year - start.year) / 12))
    for year in range(start.year, end.year + 1, step):
        gx = x(dt.date(year, 1, 1))
        out.append(
            f'<line x1="{gx:.1f}" y1="{TOP}" x2="{gx:.1f}" y2="{bottom}" stroke="#dddddd"/>'
            f'<text x="{gx:.1f}" y="{bottom + 11}" text-anchor="middle">{year}</text>'
        )
    row = {lane: i for i, lane in enumerate(lanes)}
    for i, (source, file) in enumerate(lanes):
        y = TOP + LANE * i + LANE / 2
        label = escape(f"{source} {file}".strip())
        out.append(f'<text x="{LEFT - 6}" y="{y + 3:.1f}" text-anchor="end">{label}</text>')
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#bbbbbb"/>'
        )
    for day, e in dated:
        y = TOP + LANE * row[(e.source, e.source_person_id)] + LANE / 2
        if e.kind in BAR_KINDS:
            x0, x1 = x(day), x(day + dt.timedelta(days=_length(e)))
            out.append(
                f'<rect x="{x0:.1f}" y="{y - 5:.1f}" width="{max(x1 - x0, 2):.1f}" '
                f'height="10" fill="{BAR_COLOUR}"/>'
            )
    for day, e in dated:
        if e.kind in MARKS:
            y = TOP + LANE * row[(e.source, e.source_person_id)] + LANE / 2
            _, colour, shape = MARKS[e.kind]
            out.append(_shape(shape, x(day), y, colour))
    legend = _legend(height - 5)
    if len(every_lane) > len(lanes):
        legend += (
            f'<text x="{WIDTH - RIGHT}" y="{height - 5}" text-anchor="end">'
            f"{len(every_lane) - len(lanes)} more files not charted</text>"
        )
    out.append(legend)
    out.append("</svg>")
    return "".join(out)


def _legend(y: float) -> str:
    parts = [
        f'<rect x="{LEFT}" y="{y - 8}" width="14" height="8" fill="{BAR_COLOUR}"/>'
        f'<text x="{LEFT + 18}" y="{y}">sentence served</text>'
    ]
    lx = LEFT + 110
    for label, colour, shape in MARKS.values():
        parts.append(_shape(shape, lx, y - 3, colour))
        parts.append(f'<text x="{lx + 8}" y="{y}">{escape(label)}</text>')
        lx += 22 + 6 * len(label)
    return "".join(parts)
