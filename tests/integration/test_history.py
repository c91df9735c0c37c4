"""GetOffenderHistory over the running federation (real gRPC, real mTLS):
deterministic and probabilistic links, a person in every system, role
differences against the oracle, bad input, the audit record, and a role that
sees names masked linking on the FPS number only."""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from accord.audit.search import search
from accord.client import BrokerClient
from accord.v1 import broker_pb2
from accord.workdir import DEFAULT_POLICIES
from adapters.datagen import person_truth
from broker.history.linkage import LinkageModel, surname_tokens, tokens
from broker.policy.store import PolicySet
from tests.integration.conftest import SCALE, SEED, broker_over

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Running

pytestmark = pytest.mark.integration

FPS = broker_pb2.LINK_METHOD_FPS
PROBABILISTIC = broker_pb2.LINK_METHOD_PROBABILISTIC
ALL_SOURCES = {"CA-CSC", "BC", "ON", "QC", "SK", "YT"}


@pytest.fixture(scope="module")
def files(running: Running) -> dict[str, list[dict[str, Any]]]:
    """The truth: each person's files (FPS number -> offenders rows with ``source``)."""
    truth = person_truth(running.federation, seed=SEED, scale=SCALE)
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for code, tables in running.generated.items():
        for row in tables["offenders"].to_pylist():
            fps = truth.get((code, row["source_person_id"]))
            if fps is not None:
                out[fps].append({**row, "source": code})
    return out


def same_name(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        surname_tokens(a["surname"]) == surname_tokens(b["surname"])
        and tokens(a["given_names"]) == tokens(b["given_names"])
        and a["birth_date"] == b["birth_date"]
    )


def easy_loose_person(files: dict[str, list[dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """A person with a file carrying the FPS number and one without it that
    writes the name the same way (modulo case and accents)."""
    for fps, rows in sorted(files.items()):
        anchors = [r for r in rows if r["fps_number"]]
        for row in rows:
            if row["fps_number"] is None and any(same_name(row, a) for a in anchors):
                return fps, row
    raise AssertionError("the synthetic data has no file without its FPS number")


def test_by_fps_a_person_in_every_system_links_deterministically(crown, files):
    """The fixed edge case O'Brien has a file in all six systems, each with the FPS number."""
    fps = next(f for f, rows in files.items() if rows[0]["given_names"] == "Seán Patrick")
    history = crown.history(fps_number=fps)
    assert history.found
    assert {f.source for f in history.files} == ALL_SOURCES
    assert all(f.link == FPS and f.match_probability == 1.0 for f in history.files)
    assert history.identity["fps_number"] == fps and history.identity["surname"] == "O'Brien"
    assert {(f.source, f.source_person_id) for f in history.files} == {
        (r["source"], r["source_person_id"]) for r in files[fps]
    }
    dates = [e.date for e in history.timeline if e.date]
    assert dates == sorted(dates)
    assert all(e.source in ALL_SOURCES and e.source_person_id for e in history.timeline)
    assert {p.table for p in history.parts} >= {"offenders", "sentences", "releases"}


def test_a_file_without_the_fps_number_links_probabilistically(crown, files):
    fps, loose = easy_loose_person(files)
    history = crown.history(fps_number=fps)
    linked = {(f.source, f.source_person_id): f for f in history.files}
    file = linked[(loose["source"], loose["source_person_id"])]
    model = LinkageModel.load()
    assert file.link == PROBABILISTIC
    assert model.thresholds.link <= file.match_probability < 1
    # Every probabilistic link is a true one, and its records are attached.
    truth = {(r["source"], r["source_person_id"]) for r in files[fps]}
    assert set(linked) <= truth
    assert all(f.link == FPS for f in history.files if f.fields.get("fps_number"))
    attached = {(e.source, e.source_person_id) for e in history.timeline}
    loose_records = (
        crown.query(
            "SELECT count(*) FROM sentences WHERE source = "
            f"'{loose['source']}' AND source_person_id = '{loose['source_person_id']}'"
        )
        .table.column(0)[0]
        .as_py()
    )
    assert (loose_records > 0) == ((loose["source"], loose["source_person_id"]) in attached)


def test_a_name_search_with_variants_finds_the_person(crown, files):
    """Upper case, accents dropped, given names transposed, day and month
    swapped: the search still names the person, with the FPS number's files."""
    fps, rows = next(
        (f, rows)
        for f, rows in sorted(files.items())
        if len(rows) >= 2
        and all(r["fps_number"] for r in rows)
        and len((rows[0]["given_names"] or "").split()) == 2
        and rows[0]["birth_date"] is not None
        and rows[0]["birth_date"].day <= 12
        and rows[0]["birth_date"].day != rows[0]["birth_date"].month
    )
    person = rows[0]
    born = person["birth_date"]
    first, second = person["given_names"].split()
    history = crown.history(
        surname=person["surname"].upper(),
        given_names=f"{second} {first}",
        birth_date=f"{born.year}-{born.day:02d}-{born.month:02d}",
    )
    assert history.found, list(history.notes)
    assert history.identity["fps_number"] == fps
    assert {(f.source, f.source_person_id) for f in history.files} >= {
        (r["source"], r["source_person_id"]) for r in rows
    }


def test_an_ambiguous_name_search_lists_candidates(crown, files):
    """Each system holds its own Marie-Ève Roy-Tremblay born 1988-02-29, each a
    different person: the search names them all, with scores, and assembles none."""
    expected = {
        f
        for f, rows in files.items()
        if rows[0]["surname"] == "Roy-Tremblay" and rows[0]["given_names"] == "Marie-Ève"
    }
    assert len(expected) == len(ALL_SOURCES)
    history = crown.history(
        surname="Roy-Tremblay", given_names="Marie-Ève", birth_date="1988-02-29"
    )
    assert not history.found and not history.files and not history.timeline
    assert {c.fps_number for c in history.candidates} == expected
    assert all(
        c.match_probability >= LinkageModel.load().thresholds.link for c in history.candidates
    )
    assert any("choose one" in n for n in history.notes)


def test_an_unknown_fps_number_is_an_empty_history(crown):
    # Not test_audit_trail's 9999999Z: that test finds its one query by it in
    # the session's trail.
    history = crown.history(fps_number="9999998Y")
    assert not history.found and not history.files and not history.timeline
    assert any("9999998Y" in n for n in history.notes)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"fps_number": "12AB"}, "fps_number"),
        ({"fps_number": "1234567"}, "fps_number"),
        ({"surname": "Roy", "given_names": "Luc", "birth_date": "1979-13-45"}, "birth_date"),
        ({"surname": "Roy", "given_names": "Luc", "birth_date": "07/04/1979"}, "birth_date"),
        ({"surname": "Roy", "birth_date": "1979-04-07"}, "given_names"),
        ({"fps_number": "1234567K", "surname": "Roy"}, "fps_number"),
        ({"surname": "R" * 500, "given_names": "Luc", "birth_date": "1979-04-07"}, "surname"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_field(crown, fields, named):
    with pytest.raises(grpc.RpcError) as caught:
        crown.history(**fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in (caught.value.details() or "")


def test_police_and_crown_see_their_own_subsets(running, files):
    """A person unlawfully at large: police see the UAL files, their aliases and
    releases, no sentences; the Crown sees every file and the criminal
    history, no aliases. Each agrees with the partner's entitled view (oracle)."""
    fps = next(
        f
        for f, rows in sorted(files.items())
        if len(rows) >= 2
        and any(r["status"] == "UAL" and r["fps_number"] for r in rows)
        and any(r["status"] != "UAL" for r in rows)
    )
    seen = {}
    for partner, purpose, case_ref in (
        ("police", "investigation", ""),
        ("crown_attorney", "bail_hearing", "R-2026-0042"),
    ):
        with running.client(partner, purpose=purpose, case_ref=case_ref) as client:
            seen[partner] = client.history(fps_number=fps)
        oracle = running.oracle(partner)
        for table in ("offenders", "sentences"):
            if table in seen[partner].tables_absent:
                continue
            # fetchall: the oracle's connection is shared, and a result left
            # unfinished would refuse the next test's query on it.
            (want,) = oracle.execute(
                f"SELECT count(*) FROM {table} WHERE fps_number = '{fps}'"
            ).fetchall()
            got = (
                len([f for f in seen[partner].files if f.link == FPS])
                if table == "offenders"
                else sum(
                    1 for e in seen[partner].timeline if e.table == table and e.kind == "sentenced"
                )
            )
            assert got == want[0], (partner, table)
    police, crown = seen["police"], seen["crown_attorney"]
    assert {"sentences", "incidents", "alerts"} <= set(police.tables_absent)
    assert "aliases" in crown.tables_absent and "sentences" not in crown.tables_absent
    assert {f.fields["status"] for f in police.files if f.link == FPS} <= {"UAL", "SUPERVISED"}
    assert len(crown.files) > len(police.files)
    assert not any(e.table == "sentences" for e in police.timeline)
    # Police see each file's own number (DOMAIN.md: a record without the FPS
    # number must still be attributable to its file).
    assert all("source_person_id" in f.fields for f in police.files)


def test_the_history_is_one_audit_record_listing_its_parts(running, crown, files):
    fps, _ = easy_loose_person(files)
    history = crown.history(fps_number=fps)
    found = [
        r
        for r in search(running.workdir.audit_dir(), fps=fps)
        if r.get("query_id") == history.history_id
    ]
    assert len(found) == 1
    record = found[0]
    assert record["event"] == "history" and record["outcome"] == "OK"
    assert record["partner"] == "crown_attorney" and record["case_ref"] == "R-2026-0042"
    assert record["search"] == {"fps_number": fps} and fps in record["fps_numbers"]
    assert "probabilistic" in record["links"] and "fps" in record["links"]
    parts = {p["query_id"]: p for p in record["parts"]}
    assert set(parts) == {p.query_id for p in history.parts}
    for part in history.parts:
        audited = parts[part.query_id]
        assert audited["rewritten_sql_sha256"] == part.rewritten_sql_sha256
        assert audited["outcome"] == "OK" and audited["rows_returned"] == part.rows
        assert set(audited["sources_asked"]) <= ALL_SOURCES and audited["sql"].startswith("SELECT")
    # The parts are the history's only queries: none has a record of its own.
    assert not [r for r in search(running.workdir.audit_dir()) if r.get("query_id") in parts]


def masked_policy(running: Running, tmp: Path, masks: dict[str, str] | None = None) -> PolicySet:
    """The Crown's role with person-file columns masked (by default: names
    hashed, the birth date cut to its year)."""
    shutil.copytree(DEFAULT_POLICIES, tmp / "policies")
    role = tmp / "policies" / "roles" / "crown_attorney.yaml"
    text = role.read_text()
    masks = masks or {
        "surname": "keyed_hash",
        "given_names": "keyed_hash",
        "birth_date": "year_only",
    }
    for column, mask in masks.items():
        text = text.replace(f"      {column}: clear\n", f"      {column}: {mask}\n", 1)
    role.write_text(text)
    return PolicySet.load(tmp / "policies", running.federation)


def ask_own_broker(
    running: Running, tmp: Path, policy: PolicySet, **search: str
) -> broker_pb2.HistoryResponse | grpc.RpcError:
    """One history from a broker of the test's own under ``policy``."""
    from accord.audit.keys import load_or_create_signing_key
    from accord.audit.log import AuditLog

    audit = AuditLog(tmp / "audit", load_or_create_signing_key(tmp / "k.pem"))
    ca, cert, key = running.workdir.partner_credentials("crown_attorney")
    seen: list[broker_pb2.HistoryResponse | grpc.RpcError] = []

    def ask(port: int) -> None:
        with BrokerClient(
            f"localhost:{port}", ca, cert, key, purpose="bail_hearing", case_ref="R-1"
        ) as client:
            try:
                seen.append(
                    client.history(
                        fps_number=search.get("fps_number", ""),
                        surname=search.get("surname", ""),
                        given_names=search.get("given_names", ""),
                        birth_date=search.get("birth_date", ""),
                    )
                )
            except grpc.RpcError as exc:
                seen.append(exc)

    async def scenario() -> None:
        async with broker_over(running, audit, policy=policy) as (port, _):
            await asyncio.to_thread(ask, port)

    asyncio.run(scenario())
    return seen[0]


def test_without_the_fps_number_in_clear_a_name_search_links_the_files(running, files, tmp_path):
    """The FPS number hashed: a name search still finds Seán Patrick O'Brien as
    one person, his files linked to each other by name and birth date."""
    fps = next(f for f, rows in files.items() if rows[0]["given_names"] == "Seán Patrick")
    policy = masked_policy(running, tmp_path, {"fps_number": "keyed_hash"})
    history = ask_own_broker(
        running,
        tmp_path,
        policy,
        surname="OBRIEN",
        given_names="Patrick Sean",
        birth_date="1971-03-17",
    )
    assert isinstance(history, broker_pb2.HistoryResponse)
    assert history.found, list(history.notes)
    assert {(f.source, f.source_person_id) for f in history.files} == {
        (r["source"], r["source_person_id"]) for r in files[fps]
    }
    assert all(f.link == PROBABILISTIC for f in history.files)
    assert history.identity["fps_number"] != fps  # what the role sees: a hash


def test_a_role_seeing_names_masked_links_on_the_fps_number_only(running, files, tmp_path):
    from accord.audit.keys import load_or_create_signing_key
    from accord.audit.log import AuditLog

    fps, loose = easy_loose_person(files)
    audit = AuditLog(tmp_path / "audit", load_or_create_signing_key(tmp_path / "k.pem"))
    policy = masked_policy(running, tmp_path)
    ca, cert, key = running.workdir.partner_credentials("crown_attorney")
    seen: dict[str, Any] = {}

    def ask(port: int) -> None:
        with BrokerClient(
            f"localhost:{port}", ca, cert, key, purpose="bail_hearing", case_ref="R-1"
        ) as client:
            seen["history"] = client.history(fps_number=fps)
            try:
                client.history(surname="Roy", given_names="Luc", birth_date="1979-04-07")
            except grpc.RpcError as exc:
                seen["by_name"] = exc

    async def scenario() -> None:
        async with broker_over(running, audit, policy=policy) as (port, _):
            await asyncio.to_thread(ask, port)

    asyncio.run(scenario())
    history = seen["history"]
    assert history.found and history.files
    assert all(f.link == FPS for f in history.files)
    assert (loose["source"], loose["source_person_id"]) not in {
        (f.source, f.source_person_id) for f in history.files
    }
    assert not history.possible_matches
    assert any("FPS number only" in n for n in history.notes)
    assert seen["by_name"].code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_cli_prints_tables_and_json(running, files, capsys):
    from app.cli import main

    fps = next(f for f, rows in files.items() if rows[0]["given_names"] == "Seán Patrick")
    common = ["--as", "crown_attorney", "--purpose", "bail_hearing", "--case-ref", "R-7"]
    common += ["--workdir", str(running.workdir.path)]
    assert main(["history", "--fps", fps, *common]) == 0
    text = capsys.readouterr().out
    assert "Timeline" in text and "O'Brien" in text and "not visible to role" in text
    assert main(["history", "--fps", fps, "--format", "json", *common]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["identity"]["fps_number"] == fps and parsed["found"] is True
    assert {f["source"] for f in parsed["files"]} == ALL_SOURCES
    assert main(["history", "--fps", "12", *common]) == 1
    assert "INVALID_ARGUMENT" in capsys.readouterr().err


def test_a_history_that_cannot_be_audited_is_not_answered(running, files, tmp_path):
    from accord.audit.keys import load_or_create_signing_key
    from accord.audit.log import AuditLog
    from accord.errors import AuditWriteError

    class RefusesHistories(AuditLog):
        def append(self, record: dict[str, Any]) -> Any:
            if record.get("event") == "history":
                raise AuditWriteError("the audit trail cannot be written")
            return super().append(record)

    fps = next(f for f, rows in files.items() if rows[0]["given_names"] == "Seán Patrick")
    audit = RefusesHistories(tmp_path / "audit", load_or_create_signing_key(tmp_path / "k.pem"))
    ca, cert, key = running.workdir.partner_credentials("crown_attorney")
    seen: dict[str, Any] = {}

    def ask(port: int) -> None:
        with BrokerClient(
            f"localhost:{port}", ca, cert, key, purpose="bail_hearing", case_ref="R-1"
        ) as client:
            try:
                seen["answer"] = client.history(fps_number=fps)
            except grpc.RpcError as exc:
                seen["refused"] = exc

    async def scenario() -> None:
        async with broker_over(running, audit) as (port, _):
            await asyncio.to_thread(ask, port)

    asyncio.run(scenario())
    assert "answer" not in seen
    assert seen["refused"].code() == grpc.StatusCode.UNAVAILABLE
    assert fps not in (seen["refused"].details() or "")


def test_every_role_gets_a_history_or_a_clear_refusal(running, files):
    """No role's history ends in INTERNAL or UNKNOWN: each answers, or is
    refused with PERMISSION_DENIED (aggregate-only roles, a role that sees the
    FPS number only hashed)."""
    fps = next(f for f, rows in files.items() if rows[0]["given_names"] == "Seán Patrick")
    outcomes = {}
    for name, partner in sorted(running.policy.registry.partners.items()):
        role = running.policy.roles[partner.role]
        if not role.purposes:
            continue
        purpose = sorted(role.purposes)[0]
        with running.client(name, purpose=purpose, case_ref="R-2026-0042") as client:
            try:
                history = client.history(fps_number=fps)
                outcomes[name] = "found" if history.found else "empty"
            except grpc.RpcError as exc:
                outcomes[name] = exc.code().name
    assert set(outcomes.values()) <= {"found", "empty", "PERMISSION_DENIED"}, outcomes
    assert outcomes["crown_attorney"] == "found" and outcomes["statistics"] == "PERMISSION_DENIED"


def test_a_weak_link_is_a_possible_match_never_merged(running, files, tmp_path):
    """With the link threshold above the file's probability, the file that
    linked before is listed as a possible match, with its probability, and
    neither it nor its records are in the history."""
    import json as json_module

    from accord.audit.keys import load_or_create_signing_key
    from accord.audit.log import AuditLog
    from broker.history.linkage import DEFAULT_CONFIG, Thresholds

    fps, loose = easy_loose_person(files)
    key = (loose["source"], loose["source_person_id"])
    model_file = DEFAULT_CONFIG.parent / "linkage-model.json"
    strict = LinkageModel(
        json_module.loads(model_file.read_text()), Thresholds(link=1 - 1e-12, possible=0.5)
    )
    audit = AuditLog(tmp_path / "audit", load_or_create_signing_key(tmp_path / "k.pem"))
    ca, cert, pem = running.workdir.partner_credentials("crown_attorney")
    seen: dict[str, Any] = {}

    def ask(port: int) -> None:
        with BrokerClient(
            f"localhost:{port}", ca, cert, pem, purpose="bail_hearing", case_ref="R-1"
        ) as client:
            seen["history"] = client.history(fps_number=fps)

    async def scenario() -> None:
        async with broker_over(running, audit, linkage=strict) as (port, _):
            await asyncio.to_thread(ask, port)

    asyncio.run(scenario())
    history = seen["history"]
    possible = {(f.source, f.source_person_id): f for f in history.possible_matches}
    assert key in possible and key not in {(f.source, f.source_person_id) for f in history.files}
    assert possible[key].link == broker_pb2.LINK_METHOD_POSSIBLE
    assert 0.5 <= possible[key].match_probability < 1 - 1e-12
    assert key not in {(e.source, e.source_person_id) for e in history.timeline}
    assert all(f.link == FPS for f in history.files)


def test_a_corrupt_or_oversized_request_is_refused_and_audited_bounded(running):
    import uuid

    from accord import tls

    who = f"history-{uuid.uuid4().hex[:12]}"
    ca, cert, key = running.workdir.partner_credentials("crown_attorney")
    path = "/accord.v1.Broker/GetOffenderHistory"
    with (
        grpc.secure_channel(
            running.address, tls.channel_credentials(ca, cert, key), options=tls.CHANNEL_OPTIONS
        ) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        # field 1 (fps_number) holding bytes that are not UTF-8
        channel.unary_unary(path, request_serializer=None, response_deserializer=None)(
            b"\x0a\x02\xff\xfe", timeout=10, metadata=(("x-accord-end-user", who),)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "HistoryRequest" in (caught.value.details() or "")
    with (
        running.client("crown_attorney", end_user=who, purpose="bail_hearing") as client,
        pytest.raises(grpc.RpcError) as oversized,
    ):
        client.history(surname="X" * 50_000, given_names="Luc", birth_date="1979-04-07")
    assert oversized.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    mine = [r for r in search(running.workdir.audit_dir()) if r.get("end_user") == who]
    assert [r["event"] for r in mine] == ["history", "history"]
    assert {r["outcome"] for r in mine} == {"INVALID_ARGUMENT"}
    assert mine[1]["truncated"] == {"surname": 50_000}
    assert len(json.dumps(mine[1])) < 4000 and not mine[1]["parts"]
