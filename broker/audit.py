"""Tamper-evident audit trail: a hash-chained, signed, append-only JSON log.

Format
------
The log lives in one directory (mode 0700) as files named
``audit-YYYYMMDD-NNNN.jsonl`` (mode 0600), in name order.  ``YYYYMMDD`` is the
UTC day of the file's lines, ``NNNN`` counts files within that day from 0001.
A new file is started when the UTC day changes or when the next line would
make the file larger than ``max_file_bytes``.

Every line is one JSON object written in canonical form::

    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

followed by ``\\n``, and carries these fields besides the caller's own:

``seq``       1, 2, 3, ... over all lines of all files (checkpoints included)
``ts``        UTC time, ISO 8601 to the millisecond, e.g. 2025-01-31T12:00:00.123Z
``instance``  the broker instance that wrote the line
``prev``      the ``hash`` of the previous line ("0" * 64 for the very first)
``hash``      hex SHA-256 of the canonical JSON of the line without ``hash``

So the chain runs through all files: the first line of a file points at the
last line of the previous file.  Editing, deleting, inserting or reordering
any line breaks a hash, a ``prev`` link or the ``seq`` sequence.

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

``prune()`` deletes files past the retention period and then appends a
chained ``{"type": "prune", "files": [...], "first_seq", "first_prev"}`` line
saying where the log now starts, so that ``verify`` can tell a pruned log from
one whose earliest files were deleted.

Records must not use the keys ``seq``, ``ts``, ``instance``, ``prev`` or
``hash``, nor ``type`` values ``checkpoint`` or ``prune``.

``verify(directory, public_key)`` should be given the broker's public key: a
log verified only with the keys embedded in its checkpoints proves internal
consistency, not who wrote it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from accord.errors import AuditWriteError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "AuditLog",
    "AuditWriteError",
    "VerifyReport",
    "load_or_create_signing_key",
    "search",
    "verify",
]

log = logging.getLogger(__name__)

ZERO_HASH = "0" * 64
CHECKPOINT = "checkpoint"
PRUNE = "prune"
RESERVED_KEYS = frozenset({"seq", "ts", "instance", "prev", "hash"})
INTERNAL_TYPES = frozenset({CHECKPOINT, PRUNE})
_FILE_RE = re.compile(r"^audit-(\d{8})-(\d{4})\.jsonl$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------- helpers


def canonical(obj: dict[str, Any]) -> bytes:
    """The canonical bytes of a line (also what is written, plus a newline)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def line_hash(obj: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of ``obj`` without its ``hash`` key."""
    body = {k: v for k, v in obj.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def checkpoint_message(seq: int, last_hash: str) -> bytes:
    return f"accord-audit-checkpoint|{seq}|{last_hash}".encode()


def format_ts(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _public_hex(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def _audit_files(directory: Path) -> list[tuple[Path, date, int]]:
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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- writer

#: Below this much free space the broker stops serving rather than fail
#: queries one by one when the disk fills.
MIN_FREE_BYTES = 64 * 2**20


class AuditLog:
    """Appends hash-chained, periodically signed records to ``directory``."""

    def __init__(
        self,
        directory: Path,
        signing_key: Ed25519PrivateKey,
        *,
        checkpoint_every: int = 100,
        checkpoint_seconds: float = 60.0,
        max_file_bytes: int = 64 * 1024 * 1024,
        retention_days: int = 400,
        instance: str = "broker",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if checkpoint_seconds < 0:
            raise ValueError("checkpoint_seconds must not be negative")
        if max_file_bytes < 1:
            raise ValueError("max_file_bytes must be positive")
        if retention_days < 0:
            raise ValueError("retention_days must not be negative")
        self._dir = Path(directory)
        self._key = signing_key
        self._public_hex = _public_hex(signing_key.public_key())
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._max_bytes = max_file_bytes
        self._retention_days = retention_days
        self._instance = instance
        self._clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._file_day: date | None = None
        self._file_index = 0
        self._size = 0
        self._dirty = False  # a failed write may have left bytes past _size
        self._seq = 0
        self._prev = ZERO_HASH
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._closed = False
        try:
            self._dir.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        except OSError as exc:
            raise self._write_error("create the audit directory", exc) from exc
        self._resume()

    # -- public API

    @property
    def seq(self) -> int:
        """The seq of the last line written."""
        return self._seq

    @property
    def current_file(self) -> Path | None:
        return self._path

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``record`` durably and return it as written (with seq, hash...)."""
        if not isinstance(record, dict):
            raise TypeError("an audit record must be a dict")
        clash = RESERVED_KEYS & record.keys()
        if clash:
            raise ValueError(f"audit record uses reserved keys: {sorted(clash)}")
        if record.get("type") in INTERNAL_TYPES:
            raise ValueError(f"audit record type {record['type']!r} is reserved")
        with self._lock:
            if self._closed:
                raise AuditWriteError("audit trail is closed; the query cannot be recorded")
            now = self._clock()
            obj = dict(record)
            obj.update(
                seq=self._seq + 1, ts=format_ts(now), instance=self._instance, prev=self._prev
            )
            written = self._write_line(obj, now)
            self._since_checkpoint += 1
            if (
                self._since_checkpoint >= self._every
                or time.monotonic() - self._last_checkpoint >= self._seconds
            ):
                self._write_checkpoint(now)
            return written

    def checkpoint(self) -> dict[str, Any]:
        """Write a signed checkpoint now."""
        with self._lock:
            if self._closed:
                raise AuditWriteError("audit trail is closed")
            return self._write_checkpoint(self._clock())

    def prune(self, now: datetime | None = None) -> list[Path]:
        """Delete files whose name date is more than ``retention_days`` before ``now``."""
        with self._lock:
            if self._closed:
                raise AuditWriteError("audit trail is closed")
            moment = _as_utc(now) if now is not None else self._clock()
            cutoff = moment.date() - timedelta(days=self._retention_days)
            removed: list[Path] = []
            for path, day, _index in _audit_files(self._dir):
                if day < cutoff and path != self._path:
                    path.unlink()
                    removed.append(path)
            if not removed:
                return removed
            _fsync_dir(self._dir)
            first_seq, first_prev = self._seq + 1, self._prev
            for path, _day, _index in _audit_files(self._dir):
                first = _first_line(path)
                if first is not None:
                    first_seq, first_prev = int(first["seq"]), str(first["prev"])
                    break
            obj: dict[str, Any] = {
                "type": PRUNE,
                "seq": self._seq + 1,
                "ts": format_ts(moment),
                "instance": self._instance,
                "prev": self._prev,
                "files": [p.name for p in removed],
                "first_seq": first_seq,
                "first_prev": first_prev,
            }
            self._write_line(obj, moment)
            self._since_checkpoint += 1
            return removed

    def probe(self, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
        """Why the trail could not take a record now, or None if it could.

        Also signs a checkpoint when one is due, so the last records of a
        broker gone idle do not stay unsigned.
        """
        with self._lock:
            if self._closed:
                return "the audit trail is closed"
            try:
                if not os.access(self._dir, os.W_OK):
                    return f"the audit directory {self._dir} is not writable"
                stat = os.statvfs(self._dir)
                if stat.f_bavail * stat.f_frsize < min_free_bytes:
                    return (
                        f"less than {min_free_bytes // 2**20} MiB free for the audit "
                        f"trail in {self._dir}"
                    )
                if self._fd is not None:
                    os.fsync(self._fd)
                if (
                    self._since_checkpoint
                    and time.monotonic() - self._last_checkpoint >= self._seconds
                ):
                    self._write_checkpoint(self._clock())
            except (OSError, AuditWriteError) as exc:
                return f"the audit trail cannot be written: {exc}"
        return None

    def close(self) -> None:
        """Write a final checkpoint (if anything follows the last one) and close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._since_checkpoint > 0:
                    self._write_checkpoint(self._clock())
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals

    def _write_error(self, what: str, exc: OSError) -> AuditWriteError:
        log.error("audit trail: could not %s in %s: %s", what, self._dir, exc)
        return AuditWriteError(
            "the audit trail is unavailable, so the query cannot be recorded; try again later"
        )

    def _resume(self) -> None:
        files = _audit_files(self._dir)
        if not files:
            return
        last_obj: dict[str, Any] | None = None
        since = 0
        for path, _day, _index in reversed(files):
            lines = _read_complete_lines(path, trim=path == files[-1][0])
            if not lines:
                continue
            parsed: list[dict[str, Any]] = []
            for raw in reversed(lines):
                obj = _parse(raw)
                if obj is None:
                    raise AuditWriteError(
                        "the audit trail cannot be resumed: its last line is corrupt; "
                        "run the audit verifier"
                    )
                parsed.append(obj)
                if obj.get("type") == CHECKPOINT:
                    break
            last_obj = parsed[0]
            since = len(parsed) - (1 if parsed[-1].get("type") == CHECKPOINT else 0)
            break
        if last_obj is not None:
            seq, prev = last_obj.get("seq"), last_obj.get("hash")
            if not isinstance(seq, int) or not isinstance(prev, str):
                raise AuditWriteError(
                    "the audit trail cannot be resumed: its last line lacks seq/hash"
                )
            self._seq, self._prev, self._since_checkpoint = seq, prev, since
        path, day, index = files[-1]
        self._open(path, day, index)

    def _open(self, path: Path, day: date, index: int) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags, 0o600)
        old = self._fd
        self._fd, self._path, self._file_day, self._file_index = fd, path, day, index
        self._size = os.fstat(fd).st_size
        self._dirty = False
        if old is not None:
            os.close(old)
        _fsync_dir(self._dir)

    def _rotate_if_needed(self, day: date, length: int) -> None:
        if self._fd is None or self._file_day is None or day > self._file_day:
            index = 1 + max((i for _p, d, i in _audit_files(self._dir) if d == day), default=0)
        elif self._size > 0 and self._size + length > self._max_bytes:
            index = self._file_index + 1
        else:
            return
        name = f"audit-{day:%Y%m%d}-{index:04d}.jsonl"
        self._open(self._dir / name, day, index)

    def _write_line(self, obj: dict[str, Any], now: datetime) -> dict[str, Any]:
        digest = hashlib.sha256(canonical(obj)).hexdigest()  # obj has no hash yet
        obj["hash"] = digest
        line = canonical(obj) + b"\n"
        try:
            self._rotate_if_needed(_as_utc(now).date(), len(line))
            assert self._fd is not None
            if self._dirty:
                os.ftruncate(self._fd, self._size)
                self._dirty = False
            view = memoryview(line)
            self._dirty = True
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
            self._dirty = False
        except OSError as exc:
            if self._fd is not None and self._dirty:
                try:  # drop a partly written line so the chain stays clean
                    os.ftruncate(self._fd, self._size)
                    self._dirty = False
                except OSError:
                    pass
            raise self._write_error("write an audit line", exc) from exc
        self._size += len(line)
        self._seq = int(obj["seq"])
        self._prev = digest
        return obj

    def _write_checkpoint(self, now: datetime) -> dict[str, Any]:
        seq = self._seq + 1
        signature = self._key.sign(checkpoint_message(seq, self._prev))
        obj: dict[str, Any] = {
            "type": CHECKPOINT,
            "seq": seq,
            "ts": format_ts(now),
            "instance": self._instance,
            "prev": self._prev,
            "last_hash": self._prev,
            "signature": base64.b64encode(signature).decode("ascii"),
            "public_key": self._public_hex,
        }
        written = self._write_line(obj, now)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        return written


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _read_complete_lines(path: Path, *, trim: bool) -> list[bytes]:
    """The newline-terminated lines of ``path``.

    With ``trim``, bytes after the last newline (a write that never completed,
    hence was never acknowledged) are cut off the file.
    """
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data) and trim:
        log.warning("audit trail: dropping %d bytes of an incomplete line", len(data) - end)
        with path.open("r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
    return data[:end].split(b"\n")[:-1]


def _first_line(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as fh:
        raw = fh.readline()
    return _parse(raw) if raw.endswith(b"\n") else None


# --------------------------------------------------------------------------- verifier


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found.

    ``first_bad`` is the seq at which the log first differs from an intact
    one: the edited line, the first deleted line, the position of an inserted
    or misplaced line.  When the earliest file(s) are missing without a prune
    record it is the seq just before the first line present.
    """

    ok: bool
    records: int
    checkpoints: int
    first_bad: int | None
    problem: str
    unverifiable_tail: int
    location: str = ""


def verify(directory: Path, public_key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check the whole chain in ``directory``; stop at the first problem."""
    directory = Path(directory)
    if not directory.is_dir():
        return VerifyReport(False, 0, 0, None, "no audit directory", 0)
    walk = _Walk(public_key)
    for path, _day, _index in _audit_files(directory):
        try:
            data = path.read_bytes()
        except OSError as exc:
            return walk.fail(walk.position(), f"cannot read file: {exc.strerror}", path.name)
        pieces = data.split(b"\n")
        cut = pieces[-1] != b""
        if not cut:
            pieces.pop()
        for lineno, raw in enumerate(pieces, 1):
            where = f"{path.name}:{lineno}"
            found = walk.line(raw, cut=cut and lineno == len(pieces))
            if found is not None:
                return walk.fail(found[0], found[1], where)
    if walk.start is not None and walk.start not in walk.prunes:
        return walk.fail(walk.start[0] - 1, "", "")
    return VerifyReport(True, walk.records, walk.checkpoints, None, "", walk.tail)


class _Walk:
    """The state of ``verify`` as it walks the lines in order."""

    def __init__(self, public_key: Ed25519PublicKey | None) -> None:
        self.public_key = public_key
        self.key_hex = _public_hex(public_key) if public_key is not None else None
        self.records = self.checkpoints = self.tail = 0
        self.expected: int | None = None
        self.prev: str | None = None
        self.start: tuple[int, str] | None = None  # mid-chain start: needs a prune record
        self.prunes: set[tuple[int, str]] = set()

    def position(self) -> int:
        return self.expected if self.expected is not None else 1

    def fail(self, seq: int, problem: str, where: str) -> VerifyReport:
        if self.start is not None and self.start not in self.prunes:
            problem = (
                f"the log starts at seq {self.start[0]} and no prune record accounts for it: "
                "earliest file(s) deleted"
            ) + (f" (then also: {problem})" if problem else "")
            seq, where = self.start[0] - 1, ""
        return VerifyReport(False, self.records, self.checkpoints, seq, problem, self.tail, where)

    def line(self, raw: bytes, *, cut: bool) -> tuple[int, str] | None:
        """Check one line; (first_bad, problem) if it is bad."""
        obj = _parse(raw)
        if obj is None:
            return self.position(), "line is not valid JSON (cut or corrupted)"
        seq = obj.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return self.position(), "line lacks seq"
        position = self.expected if self.expected is not None else seq
        problem = "last line of the file is incomplete (file cut)" if cut else self._chain(obj)
        if not problem and obj.get("type") == CHECKPOINT:
            problem, self.key_hex = _check_checkpoint(obj, self.public_key, self.key_hex)
        if problem:
            return position, problem
        if obj.get("type") == CHECKPOINT:
            self.checkpoints += 1
            self.tail = 0
        else:
            if obj.get("type") == PRUNE:
                first_seq, first_prev = obj.get("first_seq"), obj.get("first_prev")
                if isinstance(first_seq, int) and isinstance(first_prev, str):
                    self.prunes.add((first_seq, first_prev))
            self.records += 1
            self.tail += 1
        self.expected, self.prev = seq + 1, str(obj["hash"])
        return None

    def _chain(self, obj: dict[str, Any]) -> str:
        """The problem with ``obj``'s hash, seq and prev link ("" if none)."""
        seq, prev, digest = obj["seq"], obj.get("prev"), obj.get("hash")
        if not (isinstance(prev, str) and isinstance(digest, str) and "ts" in obj):
            return "line lacks ts/prev/hash"
        try:
            recomputed = line_hash(obj)
        except ValueError:
            recomputed = ""
        if recomputed != digest:
            return "hash mismatch: the line was edited"
        if self.expected is None:
            if seq != 1 or prev != ZERO_HASH:
                self.start = (seq, prev)
            return ""
        if seq != self.expected:
            return (
                f"expected seq {self.expected}, found {seq}: line(s) deleted, inserted or reordered"
            )
        if prev != self.prev:
            return "prev does not match the previous line's hash"
        return ""


def _check_checkpoint(
    obj: dict[str, Any], public_key: Ed25519PublicKey | None, key_hex: str | None
) -> tuple[str, str | None]:
    """An empty problem if the checkpoint is sound; and the key to expect next."""
    last_hash, signature = obj.get("last_hash"), obj.get("signature")
    embedded = obj.get("public_key")
    if not isinstance(last_hash, str) or last_hash != obj.get("prev"):
        return "checkpoint last_hash does not match the chain", key_hex
    if not isinstance(signature, str) or not isinstance(embedded, str):
        return "checkpoint lacks signature/public_key", key_hex
    key = public_key
    if key is None:
        if key_hex is not None and embedded != key_hex:
            return "checkpoint signed with a different key than earlier checkpoints", key_hex
        if not _HEX64_RE.match(embedded):
            return "checkpoint public_key is malformed", key_hex
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(embedded))
        key_hex = embedded
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            checkpoint_message(int(obj["seq"]), last_hash),
        )
    except (InvalidSignature, ValueError):
        return "checkpoint signature does not verify", key_hex
    return "", key_hex


# --------------------------------------------------------------------------- search


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
    lo = _as_utc(since) if since is not None else None
    hi = _as_utc(until) if until is not None else None
    fps_re = re.compile(rf"(?<![0-9A-Za-z]){re.escape(fps)}(?![0-9A-Za-z])") if fps else None
    wanted = {"partner": partner, "purpose": purpose, "case_ref": case_ref}
    wanted = {k: v for k, v in wanted.items() if v is not None}
    for path, _day, _index in _audit_files(Path(directory)):
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    continue
                obj = _parse(raw)
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


# --------------------------------------------------------------------------- keys


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the Ed25519 key at ``path`` (PEM PKCS8), creating it (0600) if absent."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(
                f"audit signing key {path.name} is not an Ed25519 private key"
            ) from None
        return key
    new_key = Ed25519PrivateKey.generate()
    pem = new_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return new_key
