"""``accord audit search``: the records of the trail that match some filters.

It exists apart from the verifier because it reads leniently: it skips what
it cannot parse and never checks the chain (``verify`` does that).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broker.audit.format import INTERNAL_TYPES, as_utc, audit_files, parse_line

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
) -> Iterator[dict[str, Any]]:
    """Records (not checkpoints or prune lines) matching every filter given.

    ``since`` is inclusive, ``until`` exclusive (naive datetimes are UTC).
    ``fps`` matches when that FPS number occurs as a whole token in ``sql``.
    Search does not verify the chain: run ``verify`` for that.
    """
    lo = as_utc(since) if since is not None else None
    hi = as_utc(until) if until is not None else None
    fps_re = re.compile(rf"(?<![0-9A-Za-z]){re.escape(fps)}(?![0-9A-Za-z])") if fps else None
    wanted = {"partner": partner, "purpose": purpose, "case_ref": case_ref}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    for path, _day, _index in audit_files(Path(directory)):
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    continue
                obj = parse_line(raw)
                if obj is None or obj.get("type") in INTERNAL_TYPES:
                    continue
                if any(obj.get(k) != v for k, v in wanted.items()):
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
                if fps_re is not None:
                    sql = obj.get("sql")
                    if not isinstance(sql, str) or not fps_re.search(sql):
                        continue
                yield obj
