"""The one audit record of a history: who asked, why, for whom, and every
part (each an ordinary query, with what its own record would hold: its
query id, SQL, rewritten SQL hash, tables and columns, masks, row filters,
sources asked and what each sent). Written before the answer leaves; a
history whose record cannot be written is not answered.

``fps_numbers`` lists the numbers the history asked for or disclosed, so
``accord audit search --fps`` finds a history by name as well as by number;
``accord audit reconcile`` matches each part's scans like a query's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import grpc

from accord.errors import grpc_status
from broker.identity import MAX_END_USER
from broker.record import FIELD_LIMITS, bounded

if TYPE_CHECKING:
    from accord.v1 import broker_pb2
    from broker.history.assemble import History
    from broker.identity import Principal

#: What a part keeps of its query's record (the caller is the history's).
PART_FIELDS = (
    "query_id",
    "sql",
    "rewritten_sql_sha256",
    "tables",
    "masks",
    "row_filters",
    "fps_numbers",
    "sources_asked",
    "sources",
    "rows_returned",
    "partial",
    "duration_ms",
    "outcome",
    "error",
)
#: Search fields a record keeps, bounded like any caller text.
SEARCH_FIELDS = ("fps_number", "surname", "given_names", "birth_date", "birth_place")
MAX_SEARCH_FIELD = 200


def history_record(
    history_id: str,
    principal: Principal,
    request: broker_pb2.HistoryRequest | None,
    history: History | None,
    response: broker_pb2.HistoryResponse | None,
    error: BaseException | None,
    started: float,
) -> dict[str, Any]:
    cut: dict[str, int] = {}
    partner = principal.partner
    status, message = grpc_status(error) if error is not None else (grpc.StatusCode.OK, "")
    search = {
        name: bounded(getattr(request, name), MAX_SEARCH_FIELD, cut, name)
        for name in SEARCH_FIELDS
        if request is not None and getattr(request, name)
    }
    parts = []
    for part in history.parts if history is not None else ():
        trailer = part.outcome.trailer if part.outcome is not None else None
        full = part.record.as_dict(trailer, part.error)
        parts.append({"table": part.table, **{k: full[k] for k in PART_FIELDS if k in full}})
    fps = {n for p in parts for n in p.get("fps_numbers", ())}
    if response is not None:
        fps |= {f.fields["fps_number"] for f in response.files if "fps_number" in f.fields}
        fps |= {c.fps_number for c in response.candidates if c.fps_number}
    if request is not None and request.fps_number:
        fps.add(bounded(request.fps_number.strip().upper(), MAX_SEARCH_FIELD, cut, "fps_number"))
    record: dict[str, Any] = {
        "event": "history",
        "query_id": history_id,
        "partner": partner.name,
        "organization": partner.organization,
        "role": partner.role,
        "certificate_sha256": principal.fingerprint,
        "certificate_serial": str(principal.serial),
        "end_user": bounded(principal.end_user, MAX_END_USER, cut, "end_user"),
        "purpose": bounded(
            request.purpose if request else "", FIELD_LIMITS["purpose"], cut, "purpose"
        ),
        "case_ref": bounded(
            request.case_ref if request else "", FIELD_LIMITS["case_ref"], cut, "case_ref"
        ),
        "search": search,
        "fps_numbers": sorted(fps),
        "parts": parts,
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
        "outcome": status.name,
        "error": bounded(message, FIELD_LIMITS["error"], cut, "error"),
    }
    if response is not None:
        record["found"] = response.found
        record["files"] = [f"{f.source}/{f.source_person_id}" for f in response.files]
        record["links"] = sorted({_link_name(f.link) for f in response.files})
        record["possible_matches"] = len(response.possible_matches)
        record["candidates"] = len(response.candidates)
        record["tables_absent"] = list(response.tables_absent)
    if cut:
        record["truncated"] = cut
    return record


def _link_name(link: broker_pb2.LinkMethod) -> str:
    from accord.v1 import broker_pb2

    return broker_pb2.LinkMethod.Name(link).removeprefix("LINK_METHOD_").lower()
