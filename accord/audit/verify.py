"""``accord audit verify``: walk the whole chain and say where it first breaks.

It exists apart from the writer because it must trust nothing on disk: it
re-checks every hash, ``seq`` and ``prev`` link, every checkpoint signature,
and that a log starting mid-chain is accounted for by a prune line.

``verify(directory, public_key)`` takes the broker's public key explicitly
(``accord audit verify`` passes ``--public-key`` or the pin, see
``accord.audit.keys``): with None it checks the keys embedded in the
checkpoints, which proves internal consistency, not who wrote the trail, and
is never what the command line calls intact.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from accord.audit.format import (
    CHECKPOINT,
    PRUNE,
    ZERO_HASH,
    audit_files,
    checkpoint_message,
    line_hash,
    parse_line,
)
from accord.audit.keys import public_hex, public_key_from_hex

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


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


def verify(directory: Path, public_key: Ed25519PublicKey | None) -> VerifyReport:
    """Check the whole chain in ``directory``; stop at the first problem."""
    directory = Path(directory)
    if not directory.is_dir():
        return VerifyReport(False, 0, 0, None, "no audit directory", 0)
    walk = _Walk(public_key)
    for path, _day, _index in audit_files(directory):
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
        self.key_hex = public_hex(public_key) if public_key is not None else None
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
        obj = parse_line(raw)
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
        key = public_key_from_hex(embedded)
        if key is None:
            return "checkpoint public_key is malformed", key_hex
        key_hex = embedded
    try:
        key.verify(
            base64.b64decode(signature, validate=True),
            checkpoint_message(int(obj["seq"]), last_hash),
        )
    except (InvalidSignature, ValueError):
        return "checkpoint signature does not verify", key_hex
    return "", key_hex
