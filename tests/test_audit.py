"""The tamper-evident audit trail: chain, checkpoints, rotation, tamper detection."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from accord.audit.format import checkpoint_message, line_hash
from accord.audit.keys import load_or_create_signing_key
from accord.audit.log import AuditLog
from accord.audit.search import search
from accord.audit.verify import verify
from accord.errors import AccordError, AuditWriteError, grpc_status

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
# PKCS#8, unencrypted. Spelled in two parts so that secret scanners,
# which look for this header, do not take this test for a key.
PKCS8_HEADER = b"-----BEGIN PRIVATE" + b" KEY-----"


def files(d: Path) -> list[Path]:
    return sorted(d.glob("audit-*.jsonl"))


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def all_objs(d: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for f in files(d) for raw in lines(f)]


def make(d: Path, n: int, *, close: bool = True, **kw) -> AuditLog:
    kw.setdefault("checkpoint_every", 5)
    audit = AuditLog(d, KEY, **kw)
    for i in range(n):
        audit.append({"partner": f"p{i % 3}", "purpose": "inv", "sql": f"SELECT {i}"})
    if close:
        audit.close()
    return audit


def index_of(path: Path, seq: int) -> int:
    return next(i for i, raw in enumerate(lines(path)) if json.loads(raw)["seq"] == seq)


def test_chain_and_checkpoints(tmp_path: Path) -> None:
    d = tmp_path / "audit"
    audit = make(d, 12, close=False)
    report = verify(d, PUB)
    assert report.ok, report
    assert (report.records, report.checkpoints, report.unverifiable_tail) == (12, 2, 2)
    audit.close()
    report = verify(d, PUB)
    assert report.ok and report.checkpoints == 3 and report.unverifiable_tail == 0

    objs = all_objs(d)
    assert [o["seq"] for o in objs] == list(range(1, 16))
    assert objs[0]["prev"] == "0" * 64
    for before, after in itertools.pairwise(objs):
        assert after["prev"] == before["hash"]
    for o in objs:
        assert o["hash"] == line_hash(o)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"])
        assert o["instance"] == "broker"
    cps = [o for o in objs if o.get("type") == "checkpoint"]
    assert [c["seq"] for c in cps] == [6, 12, 15]
    for c in cps:
        assert c["last_hash"] == c["prev"]
        PUB.verify(base64.b64decode(c["signature"]), checkpoint_message(c["seq"], c["last_hash"]))
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files(d))
    assert re.fullmatch(r"audit-\d{8}-0001\.jsonl", files(d)[0].name)


def test_checkpoint_by_time(tmp_path: Path) -> None:
    make(tmp_path, 3, checkpoint_every=1000, checkpoint_seconds=0.0)
    types = [o.get("type") for o in all_objs(tmp_path)]
    assert types == [None, "checkpoint"] * 3


def test_probe_signs_an_idle_tail_and_reports_what_would_fail(tmp_path: Path) -> None:
    audit = make(tmp_path, 3, close=False, checkpoint_every=1000, checkpoint_seconds=3600)
    assert audit.probe() is None
    assert verify(tmp_path, PUB).unverifiable_tail == 3  # not due yet: nothing signed
    audit._seconds = 0.0  # the checkpoint interval has passed
    assert audit.probe() is None
    report = verify(tmp_path, PUB)
    assert report.ok and report.unverifiable_tail == 0 and report.checkpoints == 1
    assert "MiB free" in (audit.probe(min_free_bytes=2**62) or "")
    audit.close()
    assert audit.probe() == "the audit trail is closed"


def test_append_rejects_reserved_keys(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path, KEY)
    with pytest.raises(ValueError, match="reserved"):
        audit.append({"seq": 3})
    with pytest.raises(ValueError, match="reserved"):
        audit.append({"type": "checkpoint"})
    audit.close()


def test_resume_continues_chain(tmp_path: Path) -> None:
    make(tmp_path, 3)
    last = all_objs(tmp_path)[-1]
    audit = AuditLog(tmp_path, KEY)
    rec = audit.append({"partner": "x"})
    assert rec["seq"] == last["seq"] + 1 and rec["prev"] == last["hash"]
    audit.close()
    report = verify(tmp_path, PUB)
    assert report.ok and report.records == 4


def test_resume_trims_unacknowledged_fragment(tmp_path: Path) -> None:
    make(tmp_path, 3, close=False)
    f = files(tmp_path)[-1]
    with f.open("ab") as fh:
        fh.write(b'{"partial":')
    assert not verify(tmp_path, PUB).ok
    make(tmp_path, 2)
    report = verify(tmp_path, PUB)
    assert report.ok and report.records == 5


def test_rotation_by_size_continues_chain(tmp_path: Path) -> None:
    make(tmp_path, 30, max_file_bytes=1000)
    fs = files(tmp_path)
    assert len(fs) >= 3
    assert all(f.stat().st_size <= 1000 for f in fs)
    for a, b in itertools.pairwise(fs):
        assert json.loads(lines(b)[0])["prev"] == json.loads(lines(a)[-1])["hash"]
    assert verify(tmp_path, PUB).ok
    # resuming appends to the last file and keeps numbering
    make(tmp_path, 5, max_file_bytes=1000)
    report = verify(tmp_path, PUB)
    assert report.ok and report.records == 35


def test_rotation_by_day(tmp_path: Path) -> None:
    now = [datetime(2025, 3, 1, 23, 59, tzinfo=UTC)]
    audit = AuditLog(tmp_path, KEY, clock=lambda: now[0])
    audit.append({"a": 1})
    now[0] += timedelta(minutes=2)
    audit.append({"a": 2})
    audit.close()
    assert [f.name for f in files(tmp_path)] == [
        "audit-20250301-0001.jsonl",
        "audit-20250302-0001.jsonl",
    ]
    assert verify(tmp_path, PUB).ok


# --------------------------------------------------------------------------- tampering


def rewrite(path: Path, new: list[bytes]) -> None:
    path.write_bytes(b"".join(new))


def test_edit_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    f = files(tmp_path)[0]
    ls = lines(f)
    i = index_of(f, 4)
    obj = json.loads(ls[i])
    obj["partner"] = "someone-else"
    ls[i] = json.dumps(obj).encode() + b"\n"
    rewrite(f, ls)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == 4 and "hash" in report.problem


def test_edit_with_rehash_detected_at_next_link(tmp_path: Path) -> None:
    make(tmp_path, 12)
    f = files(tmp_path)[0]
    ls = lines(f)
    i = index_of(f, 4)
    obj = json.loads(ls[i])
    obj["partner"] = "someone-else"
    obj["hash"] = line_hash(obj)
    ls[i] = json.dumps(obj).encode() + b"\n"
    rewrite(f, ls)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == 5 and "prev" in report.problem


def test_deleted_line_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    f = files(tmp_path)[0]
    ls = lines(f)
    del ls[index_of(f, 4)]
    rewrite(f, ls)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == 4 and "expected seq 4" in report.problem


def test_inserted_copy_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    f = files(tmp_path)[0]
    ls = lines(f)
    ls.insert(index_of(f, 8), ls[index_of(f, 2)])
    rewrite(f, ls)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == 8


def test_swapped_lines_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    f = files(tmp_path)[0]
    ls = lines(f)
    i = index_of(f, 4)
    ls[i], ls[i + 1] = ls[i + 1], ls[i]
    rewrite(f, ls)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == 4


def test_truncated_after_last_checkpoint_is_unverifiable_tail(tmp_path: Path) -> None:
    make(tmp_path, 12)  # checkpoints at 6, 12 and (close) 15
    f = files(tmp_path)[0]
    rewrite(f, lines(f)[: index_of(f, 13) + 1])
    report = verify(tmp_path, PUB)
    assert report.ok and report.checkpoints == 2 and report.unverifiable_tail == 1


def test_cut_last_line_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    f = files(tmp_path)[0]
    ls = lines(f)
    ls[-1] = ls[-1][: len(ls[-1]) // 2]
    rewrite(f, ls)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == 15


def test_cut_middle_line_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    f = files(tmp_path)[0]
    ls = lines(f)
    i = index_of(f, 7)
    ls[i] = ls[i][: len(ls[i]) // 2] + b"\n"
    rewrite(f, ls)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == 7 and "JSON" in report.problem


def test_deleted_middle_file_detected(tmp_path: Path) -> None:
    make(tmp_path, 30, max_file_bytes=1000)
    fs = files(tmp_path)
    missing = json.loads(lines(fs[1])[0])["seq"]
    fs[1].unlink()
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == missing


def test_deleted_first_file_detected(tmp_path: Path) -> None:
    make(tmp_path, 30, max_file_bytes=1000)
    fs = files(tmp_path)
    first_left = json.loads(lines(fs[1])[0])["seq"]
    fs[0].unlink()
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == first_left - 1
    assert "earliest" in report.problem


def forge_last_checkpoint(d: Path, *, swap_key: bool) -> int:
    f = files(d)[-1]
    ls = lines(f)
    cp = json.loads(ls[-1])
    assert cp["type"] == "checkpoint"
    other = Ed25519PrivateKey.generate()
    sig = other.sign(checkpoint_message(cp["seq"], cp["last_hash"]))
    cp["signature"] = base64.b64encode(sig).decode()
    if swap_key:
        cp["public_key"] = other.public_key().public_bytes_raw().hex()
    cp["hash"] = line_hash(cp)
    ls[-1] = json.dumps(cp).encode() + b"\n"
    rewrite(f, ls)
    return int(cp["seq"])


def test_forged_checkpoint_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    seq = forge_last_checkpoint(tmp_path, swap_key=True)
    report = verify(tmp_path, PUB)
    assert not report.ok and report.first_bad == seq and "signature" in report.problem
    report = verify(tmp_path, None)  # embedded keys only: must all be the same key
    assert not report.ok and report.first_bad == seq and "different key" in report.problem


def test_forged_checkpoint_keeping_key_detected(tmp_path: Path) -> None:
    make(tmp_path, 12)
    seq = forge_last_checkpoint(tmp_path, swap_key=False)
    report = verify(tmp_path, None)
    assert not report.ok and report.first_bad == seq and "signature" in report.problem


# --------------------------------------------------------------------------- failures


def test_write_failure_raises_and_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = make(tmp_path, 2, close=False)

    def broken(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(AuditWriteError) as info:
        audit.append({"partner": "x"})
    assert isinstance(info.value, AccordError)
    assert grpc_status(info.value)[0] == grpc.StatusCode.UNAVAILABLE
    assert str(tmp_path) not in str(info.value)
    monkeypatch.undo()
    rec = audit.append({"partner": "y"})
    assert rec["seq"] == 3
    audit.close()
    report = verify(tmp_path, PUB)
    assert report.ok and report.records == 3


def test_append_many_writes_one_chain_in_order(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path, KEY, checkpoint_every=5)
    batches = [[{"n": 1}, {"n": 2}, {"n": 3}], [], [{"n": 4}], [{"n": n} for n in range(5, 12)]]
    written = [audit.append_many(b) for b in batches]
    audit.append({"n": 12})
    audit.close()
    assert [len(w) for w in written] == [3, 0, 1, 7]
    assert [r["seq"] for w in written for r in w] == list(range(1, 12))
    report = verify(tmp_path, PUB)
    assert report.ok and report.records == 12
    objs = all_objs(tmp_path)
    assert [o["n"] for o in objs if o.get("type") is None] == list(range(1, 13))
    # A checkpoint comes after a whole batch, never inside it.
    assert [o["seq"] for o in objs if o.get("type") == "checkpoint"] == [12, 14]


def test_append_many_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = make(tmp_path, 2, close=False)

    def broken(fd: int) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(AuditWriteError):
        audit.append_many([{"partner": "x"}, {"partner": "y"}])
    monkeypatch.undo()
    with pytest.raises(ValueError, match="reserved"):
        audit.append_many([{"partner": "ok"}, {"seq": 9}])  # checked before anything is written
    assert [r["seq"] for r in audit.append_many([{"partner": "z"}, {"partner": "w"}])] == [3, 4]
    audit.close()
    report = verify(tmp_path, PUB)
    assert report.ok and report.records == 4
    assert [o.get("partner") for o in all_objs(tmp_path) if o.get("type") is None] == [
        "p0",
        "p1",
        "z",
        "w",
    ]


# --------------------------------------------------------------------------- search, prune


def test_search_filters(tmp_path: Path) -> None:
    now = [datetime(2025, 5, 1, 10, 0, tzinfo=UTC)]
    audit = AuditLog(tmp_path, KEY, checkpoint_every=2, clock=lambda: now[0])
    rows = [
        {"partner": "police", "purpose": "inv", "case_ref": "C1", "sql": "x WHERE fps = '12345A'"},
        {"partner": "courts", "purpose": "trial", "case_ref": "C2", "sql": "x WHERE fps='99'"},
        {"partner": "police", "purpose": "trial", "case_ref": "C1", "sql": "fps IN ('123456A')"},
    ]
    for row in rows:
        audit.append(row)
        now[0] += timedelta(hours=1)
    audit.close()

    def partners(**kw) -> list[str]:
        return [r["case_ref"] + r["partner"] for r in search(tmp_path, **kw)]

    assert len(list(search(tmp_path))) == 3  # checkpoints excluded
    assert partners(partner="police") == ["C1police", "C1police"]
    assert partners(purpose="trial") == ["C2courts", "C1police"]
    assert partners(case_ref="C2") == ["C2courts"]
    assert partners(fps="12345A") == ["C1police"]
    assert partners(fps="99") == ["C2courts"]
    t0 = datetime(2025, 5, 1, 11, 0, tzinfo=UTC)
    assert partners(since=t0) == ["C2courts", "C1police"]
    assert partners(until=t0) == ["C1police"]
    assert partners(since=t0, until=t0 + timedelta(hours=1), partner="courts") == ["C2courts"]


def test_prune(tmp_path: Path) -> None:
    today = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    now = [today - timedelta(days=500)]
    audit = AuditLog(tmp_path, KEY, checkpoint_every=2, retention_days=400, clock=lambda: now[0])
    for delta in (500, 401, 399, 0):
        now[0] = today - timedelta(days=delta)
        audit.append({"age": delta})
    removed = audit.prune(today)

    def name(delta: int) -> str:
        return f"audit-{today - timedelta(days=delta):%Y%m%d}-0001.jsonl"

    assert [p.name for p in removed] == [name(500), name(401)]
    assert [f.name for f in files(tmp_path)] == [name(399), name(0)]
    assert audit.prune(today) == []
    audit.close()
    report = verify(tmp_path, PUB)
    assert report.ok, report
    assert [r["age"] for r in search(tmp_path)] == [399, 0]


def test_signing_key_created_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(PKCS8_HEADER)
    again = load_or_create_signing_key(path)
    assert again.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
