"""The audit trail's format: file names, canonical lines, the hash chain, the
shapes of checkpoint and prune lines.

It exists so that the writer (``log``), the verifier (``verify``) and the
search (``search``) agree on one definition of what is on disk; it does no
I/O beyond listing the directory.

Files
-----
The log lives in one directory (mode 0700) as files named
``audit-YYYYMMDD-NNNN.jsonl`` (mode 0600), in name order.  ``YYYYMMDD`` is the
UTC day of the file's lines, ``NNNN`` counts files within that day from 0001.
A new file is started when the UTC day changes or when the next line would
make the file larger than ``max_file_bytes``.

Lines
-----
Every line is one JSON object written in canonical form::

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

followed by ``\\n``, and carries these fields besides the caller's own:

``seq``       1, 2, 3, ... over all lines of all files (checkpoints included)
``ts``        UTC time, ISO 8601 to the millisecond, e.g. 2025-01-31T12:00:00.123Z
``instance``  the broker (or adapter) instance that wrote the line
``prev``      the ``hash`` of the previous line ("0" * 64 for the very first)
``hash``      hex SHA-256 of the canonical JSON of the line without ``hash``

So the chain runs through all files: the first line of a file points at the
last line of the previous file.  Editing, deleting, inserting or reordering
any line breaks a hash, a ``prev`` link or the ``seq`` sequence.

Checkpoints
-----------
Every ``checkpoint_every`` records, or when ``checkpoint_seconds`` have passed
(checked on append), and on ``close()``, a checkpoint line is appended::

    {"type": "checkpoint", "seq", "ts", "instance", "prev", "hash",
     "last_hash": <hash of the line before = prev>,
     "signature": <base64 Ed25519 over "accord-audit-checkpoint|{seq}|{last_hash}">,
     "public_key": <hex raw Ed25519 public key>}

A checkpoint signs the whole chain up to it, so rewriting the chain needs the
signing key.  Records after the last checkpoint are only hash-chained; verify
reports them as ``unverifiable_tail`` (truncating the end of the log cannot be
told apart from a log that simply has not been checkpointed yet).

Prune lines
-----------
``prune()`` deletes files past the retention period and then appends a
chained ``{"type": "prune", "files": [...], "first_seq", "first_prev"}`` line
saying where the log now starts, so that ``verify`` can tell a pruned log from
one whose earliest files were deleted.

Records must not use the keys ``seq``, ``ts``, ``instance``, ``prev`` or
``hash``, nor ``type`` values ``checkpoint`` or ``prune``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import date
    from pathlib import Path

ZERO_HASH = "0" * 64
CHECKPOINT = "checkpoint"
PRUNE = "prune"
RESERVED_KEYS = frozenset({"seq", "ts", "instance", "prev", "hash"})
INTERNAL_TYPES = frozenset({CHECKPOINT, PRUNE})
_FILE_RE = re.compile(r"^audit-(\d{8})-(\d{4})\.jsonl$")


def file_name(day: date, index: int) -> str:
    """The name of the ``index``-th file of ``day``.

    >>> from datetime import date
    >>> file_name(date(2025, 3, 1), 2)
    'audit-20250301-0002.jsonl'
    """
    return f"audit-{day:%Y%m%d}-{index:04d}.jsonl"


def audit_files(directory: Path) -> list[tuple[Path, date, int]]:
    """The audit files in ``directory`` in chain order (by name)."""
    found: list[tuple[Path, date, int]] = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    for name in names:
        m = _FILE_RE.match(name)
        if m is None:
            continue
        try:
            day = datetime.strptime(m.group(1), "%Y%m%d").replace(tzinfo=UTC).date()
        except ValueError:
            continue
        found.append((directory / name, day, int(m.group(2))))
    return found


def canonical(obj: dict[str, Any]) -> bytes:
    """The canonical bytes of a line (also what is written, plus a newline).

    >>> canonical({"b": 1, "a": "é"}).decode()
    '{"a":"é","b":1}'
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def line_hash(obj: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of ``obj`` without its ``hash`` key."""
    body = {k: v for k, v in obj.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """The JSON object on a line, or None if the line is not one."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def format_ts(moment: datetime) -> str:
    """A line's ``ts``.

    >>> format_ts(datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC))
    '2025-01-31T12:00:00.123Z'
    """
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def checkpoint_message(seq: int, last_hash: str) -> bytes:
    """The bytes a checkpoint's signature is over."""
    return f"accord-audit-checkpoint|{seq}|{last_hash}".encode()


def checkpoint_line(
    *, seq: int, ts: str, instance: str, prev: str, signature: bytes, public_key: str
) -> dict[str, Any]:
    """A checkpoint line (without its ``hash``) signing the chain up to ``prev``."""
    return {
        "type": CHECKPOINT,
        "seq": seq,
        "ts": ts,
        "instance": instance,
        "prev": prev,
        "last_hash": prev,
        "signature": base64.b64encode(signature).decode("ascii"),
        "public_key": public_key,
    }


def prune_line(
    *,
    seq: int,
    ts: str,
    instance: str,
    prev: str,
    files: list[str],
    first_seq: int,
    first_prev: str,
) -> dict[str, Any]:
    """A prune line (without its ``hash``): ``files`` were deleted, the log now
    starts at the line with ``first_seq`` whose ``prev`` is ``first_prev``."""
    return {
        "type": PRUNE,
        "seq": seq,
        "ts": ts,
        "instance": instance,
        "prev": prev,
        "files": files,
        "first_seq": first_seq,
        "first_prev": first_prev,
    }
