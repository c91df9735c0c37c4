"""``accord history``: one person's history as terminal tables (Rich) or JSON.

The JSON is the ``HistoryResponse`` message as protobuf's JSON mapping gives
it (field names as in broker.proto), for a renderer or a script to consume.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from accord.v1 import broker_pb2

if TYPE_CHECKING:
    import argparse

    from accord.client import BrokerClient

#: Person-file columns shown in the files table, when the role sees them.
FILE_COLUMNS = (
    "status",
    "supervising_jurisdiction",
    "assigned_facility",
    "security_level",
    "surname",
    "given_names",
    "birth_date",
)


def fetch(client: BrokerClient, args: argparse.Namespace) -> broker_pb2.HistoryResponse:
    return client.history(
        fps_number=args.fps or "",
        surname=args.surname or "",
        given_names=args.given_names or "",
        birth_date=args.birth_date or "",
        birth_place=args.birth_place or "",
        purpose=args.purpose,
        case_ref=args.case_ref,
        timeout=args.timeout,
    )


def as_json(history: broker_pb2.HistoryResponse) -> str:
    return json.dumps(
        MessageToDict(history, preserving_proto_field_name=True), indent=2, ensure_ascii=False
    )


def link_label(file: broker_pb2.HistoryFile | broker_pb2.TimelineEntry) -> str:
    if file.link == broker_pb2.LINK_METHOD_FPS:
        return "fps"
    name = "probabilistic" if file.link == broker_pb2.LINK_METHOD_PROBABILISTIC else "possible"
    return f"{name} {file.match_probability:.3f}"


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table | None:
    if not rows:
        return None
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _person(history: broker_pb2.HistoryResponse) -> Table:
    head = Table(title="Person", show_header=False, box=None)
    for key in ("fps_number", "surname", "given_names", "birth_date", "birth_place", "gender"):
        if key in history.identity:
            head.add_row(key, history.identity[key])
    if not history.found:
        head.add_row("found", "no")
    return head


def _sections(history: broker_pb2.HistoryResponse) -> list[Table | None]:
    names = ("surname", "given_names", "birth_date")
    return [
        _person(history),
        _table(
            "Files",
            ("source", "file", "link", *FILE_COLUMNS),
            [
                (
                    f.source,
                    f.source_person_id,
                    link_label(f),
                    *(f.fields.get(c, "") for c in FILE_COLUMNS),
                )
                for f in history.files
            ],
        ),
        _table(
            "Possible matches (not merged)",
            ("source", "file", "probability", *names),
            [
                (
                    f.source,
                    f.source_person_id,
                    f"{f.match_probability:.3f}",
                    *(f.fields.get(c, "") for c in names),
                )
                for f in history.possible_matches
            ],
        ),
        _table(
            "Aliases",
            ("source", "file", "surname", "given names"),
            [(a.source, a.source_person_id, a.surname, a.given_names) for a in history.aliases],
        ),
        _table(
            "Timeline",
            ("date", "what", "source", "file", "link", "detail"),
            [
                (e.date or "-", e.kind, e.source, e.source_person_id, link_label(e), e.summary)
                for e in history.timeline
            ],
        ),
        _table(
            "Candidates",
            ("probability", "fps", "surname", "given names", "born", "files"),
            [
                (
                    f"{c.match_probability:.3f}",
                    c.fps_number or "-",
                    c.surname,
                    c.given_names,
                    c.birth_date,
                    ", ".join(c.files),
                )
                for c in history.candidates
            ],
        ),
    ]


def as_tables(history: broker_pb2.HistoryResponse, width: int = 140) -> str:
    """The history as plain-text tables (no colour: the output is text)."""
    out = io.StringIO()
    console = Console(file=out, width=width, highlight=False, color_system=None)
    for section in _sections(history):
        if section is not None:
            console.print(section)
    for table in history.tables_absent:
        console.print(f"not visible to role {history.role}: {table}")
    for note in history.notes:
        console.print(f"note: {note}")
    console.print(
        f"history {history.history_id}: {len(history.parts)} queries, "
        f"{history.elapsed_ms:.0f} ms{' (PARTIAL)' if history.partial else ''}"
    )
    return out.getvalue().rstrip()
