"""``accord audit search``: the records of the trail that match some filters.

It exists apart from the verifier because it reads leniently: it skips what
it cannot parse and never checks the chain (``verify`` does that).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.audit.format import INTERNAL_TYPES, as_utc, audit_files, parse_line
from accord.fields import normalize

if TYPE_CHECKING:
    from collections.abc import Iterator


def search(
    directory: Path,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    partner: str | None = None,
    purpose: str | None = None,
    case_ref: str | None = None,
    fps: str | None = None,
    query_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Records (not checkpoints or prune lines) matching every filter given.

    ``since`` is inclusive, ``until`` exclusive (naive datetimes are UTC).
    ``fps`` matches when that FPS number occurs as a whole token in ``sql``
    (or, in an adapter's trail, ``predicate``).
    ``purpose`` and ``case_ref`` are normalized as admission normalizes them
    (``accord.fields``) on both sides, so a search for what the user typed
    (a trailing newline, a full-width letter) finds the record. ``fps`` also
    matches a record whose ``fps_numbers`` (the numbers its predicates
    resolve to after constant folding, ``accord.audit.lookups``) hold it,
    compared case-insensitively.
    ``query_id`` finds the records of one query (the id every error ends with).
    Search does not verify the chain: run ``verify`` for that.
    """
    lo = as_utc(since) if since is not None else None
    hi = as_utc(until) if until is not None else None
    fps = normalize(fps) if fps else None
    fps_re = re.compile(rf"(?<![0-9A-Za-z]){re.escape(fps)}(?![0-9A-Za-z])") if fps else None
    wanted = {
        "partner": partner,
        "purpose": normalize(purpose) if purpose is not None else None,
        "case_ref": normalize(case_ref) if case_ref is not None else None,
        "query_id": query_id.strip().lower() if query_id is not None else None,
    }
    wanted = {k: v for k, v in wanted.items() if v is not None}
    for path, _day, _index in audit_files(Path(directory)):
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    continue
                obj = parse_line(raw)
                if obj is None or obj.get("type") in INTERNAL_TYPES:
                    continue
                if any(_normalized(obj.get(k)) != v for k, v in wanted.items()):
                    continue
                if lo is not None or hi is not None:
                    ts = obj.get("ts")
                    try:
                        when = datetime.fromisoformat(ts) if isinstance(ts, str) else None
                    except ValueError:
                        when = None
                    if when is None:
                        continue
                    if (lo is not None and when < lo) or (hi is not None and when >= hi):
                        continue
                if fps is not None and fps_re is not None and not _looks_up(obj, fps, fps_re):
                    continue
                yield obj


def _normalized(value: object) -> object:
    return normalize(value) if isinstance(value, str) else value


def _looks_up(obj: dict[str, Any], fps: str, fps_re: re.Pattern[str]) -> bool:
    """Whether the record's query resolved to ``fps``, or names it in its SQL."""
    resolved = obj.get("fps_numbers")
    if isinstance(resolved, list) and fps.upper() in {
        str(n).upper() for n in resolved if isinstance(n, str)
    }:
        return True
    # The broker's records keep the query's SQL, an adapter's the scan's predicate.
    texts = (obj.get("sql"), obj.get("predicate"))
    return any(isinstance(text, str) and fps_re.search(text) is not None for text in texts)
