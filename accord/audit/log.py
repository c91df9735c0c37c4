"""The audit trail's writer: ``AuditLog`` appends records durably, signs
checkpoints on schedule, rotates files and prunes them past retention.

It exists so that one object owns the open file and the chain's state
(``seq``, ``prev``, what is still unsigned) under one lock.  Each line is
fsynced before ``append`` returns; a line that could not be written is cut
off again and raises ``AuditWriteError``, so a query that cannot be recorded
is not answered.  On start it resumes the chain from the last line on disk,
dropping an incomplete last line (a write never acknowledged).

When it checkpoints, rotates and prunes, and what those lines look like, is
described in ``accord.audit.format``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord.audit.format import (
    CHECKPOINT,
    INTERNAL_TYPES,
    RESERVED_KEYS,
    ZERO_HASH,
    as_utc,
    audit_files,
    canonical,
    checkpoint_line,
    checkpoint_message,
    file_name,
    format_ts,
    parse_line,
    prune_line,
)
from accord.audit.keys import public_hex
from accord.errors import AuditWriteError

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# The name the trail has always logged under (it began as broker.audit).
log = logging.getLogger("broker.audit")


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
        self._public_hex = public_hex(signing_key.public_key())
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
        return self.append_many([record])[0]

    def append_many(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Write ``records`` durably, in order, with one write and one fsync
        (the scans of one batch): all of them or, on any error, none."""
        for record in records:
            if not isinstance(record, dict):
                raise TypeError("an audit record must be a dict")
            clash = RESERVED_KEYS & record.keys()
            if clash:
                raise ValueError(f"audit record uses reserved keys: {sorted(clash)}")
            if record.get("type") in INTERNAL_TYPES:
                raise ValueError(f"audit record type {record['type']!r} is reserved")
        if not records:
            return []
        with self._lock:
            if self._closed:
                raise AuditWriteError("audit trail is closed; the query cannot be recorded")
            now = self._clock()
            objs, lines, prev = [], [], self._prev
            for i, record in enumerate(records, start=1):
                obj = dict(record)
                obj.update(seq=self._seq + i, ts=format_ts(now), instance=self._instance, prev=prev)
                prev = obj["hash"] = hashlib.sha256(canonical(obj)).hexdigest()
                objs.append(obj)
                lines.append(canonical(obj) + b"\n")
            self._write(b"".join(lines), now)
            self._seq, self._prev = self._seq + len(objs), prev
            self._since_checkpoint += len(objs)
            if (
                self._since_checkpoint >= self._every
                or time.monotonic() - self._last_checkpoint >= self._seconds
            ):
                self._write_checkpoint(now)
            return objs

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
            moment = as_utc(now) if now is not None else self._clock()
            cutoff = moment.date() - timedelta(days=self._retention_days)
            removed: list[Path] = []
            for path, day, _index in audit_files(self._dir):
                if day < cutoff and path != self._path:
                    path.unlink()
                    removed.append(path)
            if not removed:
                return removed
            _fsync_dir(self._dir)
            first_seq, first_prev = self._seq + 1, self._prev
            for path, _day, _index in audit_files(self._dir):
                first = _first_line(path)
                if first is not None:
                    first_seq, first_prev = int(first["seq"]), str(first["prev"])
                    break
            obj = prune_line(
                seq=self._seq + 1,
                ts=format_ts(moment),
                instance=self._instance,
                prev=self._prev,
                files=[p.name for p in removed],
                first_seq=first_seq,
                first_prev=first_prev,
            )
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
        files = audit_files(self._dir)
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
                obj = parse_line(raw)
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
            index = 1 + max((i for _p, d, i in audit_files(self._dir) if d == day), default=0)
        elif self._size > 0 and self._size + length > self._max_bytes:
            index = self._file_index + 1
        else:
            return
        self._open(self._dir / file_name(day, index), day, index)

    def _write_line(self, obj: dict[str, Any], now: datetime) -> dict[str, Any]:
        digest = hashlib.sha256(canonical(obj)).hexdigest()  # obj has no hash yet
        obj["hash"] = digest
        self._write(canonical(obj) + b"\n", now)
        self._seq = int(obj["seq"])
        self._prev = digest
        return obj

    def _write(self, data: bytes, now: datetime) -> None:
        """Appends whole lines durably; on an error, none of them stays."""
        try:
            self._rotate_if_needed(as_utc(now).date(), len(data))
            assert self._fd is not None
            if self._dirty:
                os.ftruncate(self._fd, self._size)
                self._dirty = False
            view = memoryview(data)
            self._dirty = True
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
            self._dirty = False
        except OSError as exc:
            if self._fd is not None and self._dirty:
                try:  # drop partly written lines so the chain stays clean
                    os.ftruncate(self._fd, self._size)
                    self._dirty = False
                except OSError:
                    pass
            raise self._write_error("write an audit line", exc) from exc
        self._size += len(data)

    def _write_checkpoint(self, now: datetime) -> dict[str, Any]:
        seq = self._seq + 1
        signature = self._key.sign(checkpoint_message(seq, self._prev))
        obj = checkpoint_line(
            seq=seq,
            ts=format_ts(now),
            instance=self._instance,
            prev=self._prev,
            signature=signature,
            public_key=self._public_hex,
        )
        written = self._write_line(obj, now)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        return written


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
    return parse_line(raw) if raw.endswith(b"\n") else None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
