"""One person's history, assembled from ordinary policy-checked queries.

Each part is a plain SQL query through the pipeline (``QueryPipeline.run``)
under the caller's principal, purpose and case reference: the role's row
filters and masks apply as to any query, and a table the role may not see
is simply not asked (``tables_absent``). Each part fills its own
:class:`QueryRecord`; the servicer writes them all in one ``history``
audit record before the answer leaves.

By FPS number: the files carrying it, and each child table's rows carrying
it, in parallel; then the files without an FPS number born on one of the
person's birth dates (or its day/month swap), scored against the person's
files (``broker.history.linkage``); the child rows of those linked, by
their system and file number. By name: the files born on the date (or its
swap), scored against the search; exactly one person at or above the link
threshold is assembled as above (by FPS number when the person has one),
otherwise the candidates are listed and nothing is assembled.

Linkage reads only what the caller sees in clear: with names or birth date
masked or withheld, files are linked on the FPS number alone.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from accord.catalog import SOURCE_COLUMN
from accord.errors import PolicyDenied, QueryTimedOut
from accord.logs import new_query_id
from accord.v1 import broker_pb2
from broker.history.linkage import LINKAGE_COLUMNS, feature_table, features, swapped
from broker.history.timeline import facts, text
from broker.policy.rewrite import RoleView
from broker.record import QueryRecord
from broker.scan_batch import ScanGroup

if TYPE_CHECKING:
    import datetime as dt

    from broker.history.linkage import LinkageModel
    from broker.history.request import HistoryQuery
    from broker.identity import Principal
    from broker.pipeline import QueryOutcome, QueryPipeline
    from broker.scan_batch import GroupMember

HISTORY_TABLES = ("offenders", "aliases", "sentences", "releases", "incidents", "alerts")
CHILD_TABLES = HISTORY_TABLES[1:]
#: What the identity says, from the files that agree most.
IDENTITY_COLUMNS = ("fps_number", "surname", "given_names", "birth_date", "birth_place", "gender")

FPS = broker_pb2.LINK_METHOD_FPS
PROBABILISTIC = broker_pb2.LINK_METHOD_PROBABILISTIC
POSSIBLE = broker_pb2.LINK_METHOD_POSSIBLE


@dataclass
class Part:
    """One query of a history, with its audit record and how it ended."""

    table: str
    record: QueryRecord
    outcome: QueryOutcome | None = None
    error: BaseException | None = None


@dataclass
class File:
    """One system's person file, with how it is linked to the person."""

    uid: str
    row: dict[str, Any]
    link: broker_pb2.LinkMethod = FPS
    probability: float = 1.0

    @property
    def source(self) -> str:
        return str(self.row[SOURCE_COLUMN])

    @property
    def pid(self) -> str | None:
        pid = self.row.get("source_person_id")
        return None if pid is None else str(pid)


@dataclass
class Person:
    """A candidate of a name search: files of one FPS number, or one file without it."""

    fps: str | None
    files: list[File] = field(default_factory=list)

    @property
    def score(self) -> float:
        return max(f.probability for f in self.files)


class History:
    """Assembles one history for one caller (a new one per request)."""

    def __init__(
        self,
        pipeline: QueryPipeline,
        model: LinkageModel,
        principal: Principal,
        query: HistoryQuery,
        deadline: float,
    ) -> None:
        self.pipeline, self.model, self.principal, self.query = pipeline, model, principal, query
        self.deadline = deadline
        role = pipeline.policies.role_for(principal)
        if role.aggregate_only:
            raise PolicyDenied(
                f"role {role.name} sees aggregates only: no history of one person",
                reason="aggregate_only",
            )
        self.view = RoleView(role, principal, pipeline.federation)
        self.schema = self.view.schema()
        self.parts: list[Part] = []
        self.notes: list[str] = []
        self.missing_sources: set[str] = set()
        self.offenders_clear = self.clear("offenders")
        self.linking = all(c in self.offenders_clear for c in LINKAGE_COLUMNS[:3])
        self._blocks: dict[frozenset[dt.date], list[dict[str, Any]]] = {}

    def clear(self, table: str) -> set[str]:
        """Columns of ``table`` this caller sees in clear (granted, released, unmasked)."""
        if table not in self.schema:
            return set()
        return {c for c in self.view.columns(table) if self.view.mask_of(table, c) is None}

    # -- the parts ------------------------------------------------------------

    async def run(
        self, table: str, where: str, member: GroupMember | None = None
    ) -> list[dict[str, Any]]:
        """One part: the visible columns of ``table`` WHERE ``where``, as a
        query; as a ``member`` of a scan group, its scans go with the group's."""
        try:
            return await self._run(table, where, member)
        finally:
            if member is not None:
                member.leave()  # a part refused before its scans must not hold the others

    async def _run(
        self, table: str, where: str, member: GroupMember | None
    ) -> list[dict[str, Any]]:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise QueryTimedOut("the history ran out of time")
        columns = [*self.view.columns(table), SOURCE_COLUMN]
        sql = f"SELECT {', '.join(columns)} FROM {table} WHERE {where}"
        request = broker_pb2.QueryRequest(
            sql=sql,
            purpose=self.query.purpose,
            case_ref=self.query.case_ref,
            allow_partial=True,  # a system down must not hide the others; said in the answer
            timeout_ms=max(1, int(remaining * 1000)),
        )
        record = QueryRecord.open(
            "history_part",
            new_query_id(),
            self.principal,
            request,
            time.monotonic(),
            self.pipeline.limits.max_sql_bytes,
        )
        part = Part(table, record)
        self.parts.append(part)
        try:
            part.outcome = await self.pipeline.run(self.principal, request, record, member)
        except BaseException as exc:
            part.error = exc
            raise
        for status in part.outcome.trailer.sources:
            if status.state != broker_pb2.SOURCE_STATE_OK:
                self.missing_sources.add(status.source)
        rows: list[dict[str, Any]] = part.outcome.table.to_pylist()
        return rows

    async def block(self, dates: set[dt.date]) -> list[dict[str, Any]]:
        """Person files born on one of ``dates`` (fetched once per request)."""
        for fetched, rows in self._blocks.items():
            if dates <= fetched:
                return [r for r in rows if r.get("birth_date") in dates]
        listed = ", ".join(f"DATE '{d.isoformat()}'" for d in sorted(dates))
        rows = await self.run("offenders", f"birth_date IN ({listed})")
        self._blocks[frozenset(dates)] = rows
        return rows

    # -- linkage --------------------------------------------------------------

    def features(self, uid: str, row: dict[str, Any]) -> dict[str, Any]:
        """A file's linkage features from its clear columns only."""
        clear = self.offenders_clear

        def seen(column: str) -> Any:
            return row.get(column) if column in clear else None

        return features(
            uid, seen("surname"), seen("given_names"), seen("birth_date"), seen("birth_place")
        )

    def best_scores(self, anchors: list[File], rows: list[dict[str, Any]]) -> list[float]:
        """For each row, its highest match probability against any anchor."""
        if not anchors or not rows:
            return [0.0] * len(rows)
        left = feature_table([self.features(f.uid, f.row) for f in anchors])
        right = feature_table([self.features(f"r{i}", r) for i, r in enumerate(rows)])
        found = self.model.probabilities(left, right)
        best = [0.0] * len(rows)
        for (_, right_id), p in found.items():
            i = int(right_id[1:])
            best[i] = max(best[i], p)
        return best

    # -- the whole history ----------------------------------------------------

    async def assemble(self) -> broker_pb2.HistoryResponse:
        absent = [t for t in HISTORY_TABLES if t not in self.schema]
        if not self.linking and "offenders" in self.schema:
            self.notes.append(
                "surname, given names or birth date are not visible in clear to this role: "
                "files are linked on the FPS number only"
            )
        if self.query.fps_number is not None:
            if "fps_number" not in self.offenders_clear and "offenders" in self.schema:
                raise PolicyDenied(
                    "this role does not see FPS numbers in clear: it cannot ask a history by one",
                    reason="column",
                )
            response = await self.by_fps(self.query.fps_number)
        else:
            if not self.linking:
                raise PolicyDenied(
                    "this role does not see surname, given names and birth date in clear: "
                    "search by FPS number",
                    reason="column",
                )
            response = await self.by_name()
        response.role = self.view.role.name
        response.purpose = self.query.purpose
        response.tables_absent.extend(absent)
        if self.missing_sources:
            response.partial = True
            self.notes.append(
                f"{', '.join(sorted(self.missing_sources))} did not answer in full: "
                "the history may be incomplete"
            )
        response.notes.extend(self.notes)
        for part in self.parts:
            if part.outcome is not None:
                response.parts.append(
                    broker_pb2.HistoryPart(
                        query_id=part.record.query_id,
                        table=part.table,
                        rewritten_sql_sha256=part.record.plan.rewritten_sql_sha256
                        if part.record.plan
                        else "",
                        rows=part.outcome.trailer.rows,
                        sources=part.outcome.trailer.sources,
                        elapsed_ms=part.outcome.trailer.elapsed_ms,
                    )
                )
        return response

    async def by_fps(self, fps: str) -> broker_pb2.HistoryResponse:
        literal = _literal(fps)
        children_asked = [t for t in CHILD_TABLES if "fps_number" in self.clear(t)]
        # All these parts' scans of one source go in one call (broker.scan_batch).
        group = ScanGroup(len(children_asked) + ("offenders" in self.schema))
        anchors_task = (
            asyncio.ensure_future(self.run("offenders", f"fps_number = {literal}", group.member()))
            if "offenders" in self.schema
            else None
        )
        child_tasks = {
            t: asyncio.ensure_future(self.run(t, f"fps_number = {literal}", group.member()))
            for t in children_asked
        }
        try:
            rows = await anchors_task if anchors_task is not None else []
            anchors = [File(_uid(r, f"a{i}"), r) for i, r in enumerate(rows)]
            aliases = await child_tasks["aliases"] if "aliases" in child_tasks else []
            linked, possible = await self.loose_files(anchors, self.alias_names(anchors, aliases))
            children = {t: await task for t, task in child_tasks.items()}
        except BaseException:
            for task in (anchors_task, *child_tasks.values()):
                if task is not None:
                    task.cancel()
            raise
        files = anchors + linked
        if linked:
            await self.children_of(linked, children)
        if not files and not any(children.values()):
            self.notes.append(f"no file carries FPS number {fps} in any system this role may see")
            return broker_pb2.HistoryResponse(found=False)
        return self.response(files, possible, children)

    def alias_names(self, anchors: list[File], aliases: list[dict[str, Any]]) -> list[File]:
        """Each alias the role sees in clear, as another name of its file's
        person: the alias's names with that file's birth date and place."""
        clear = self.clear("aliases")
        if not {"alias_surname", "alias_given_names"} <= clear or not anchors:
            return []
        owners: dict[tuple[Any, Any], File] = {}
        for f in anchors:
            owners[(f.source, f.pid)] = owners[(f.source, f.row.get("fps_number"))] = f
        names = []
        for i, alias in enumerate(aliases):
            if alias.get("alias_surname") is None:
                continue
            source = alias[SOURCE_COLUMN]
            owner = (
                owners.get((source, alias.get("source_person_id")))
                or owners.get((source, alias.get("fps_number")))
                or anchors[0]  # known to another system: the person's first file
            )
            row = {
                **owner.row,
                "surname": alias["alias_surname"],
                "given_names": alias.get("alias_given_names"),
            }
            names.append(File(f"alias/{i}", row))
        return names

    async def loose_files(
        self, anchors: list[File], aliases: list[File] | None = None
    ) -> tuple[list[File], list[File]]:
        """Files without an FPS number that score as the person's (linked) or
        close to it (possible), born on one of the anchors' birth dates or its swap."""
        if not self.linking or not anchors:
            return [], []
        dates: set[dt.date] = set()
        for f in anchors:
            born = f.row.get("birth_date")
            if born is not None:
                dates.add(born)
                if (swap := swapped(born)) is not None:
                    dates.add(swap)
        if not dates:
            return [], []
        rows = [r for r in await self.block(dates) if r.get("fps_number") is None]
        # Compared with each file's name and each alias (a file may use an alias).
        scores = self.best_scores(anchors + (aliases or []), rows)
        linked: list[File] = []
        possible: list[File] = []
        thresholds = self.model.thresholds
        for i, (row, p) in enumerate(zip(rows, scores, strict=True)):
            uid = _uid(row, f"l{i}")
            if p >= thresholds.link:
                linked.append(File(uid, row, PROBABILISTIC, p))
            elif p >= thresholds.possible:
                possible.append(File(uid, row, POSSIBLE, p))
        return linked, possible

    async def children_of(
        self, files: list[File], children: dict[str, list[dict[str, Any]]]
    ) -> None:
        """Adds the child rows of ``files`` (no FPS number) by their system and file number."""
        if any(f.pid is None for f in files):
            self.notes.append(
                "this role does not see the systems' file numbers: records of files linked "
                "by name and birth date are not attached"
            )
        keyed = [f for f in files if f.pid is not None]
        if not keyed:
            return
        where = " OR ".join(
            f"({SOURCE_COLUMN} = {_literal(f.source)} "
            f"AND source_person_id = {_literal(f.pid or '')})"
            for f in keyed
        )
        tables = [t for t in CHILD_TABLES if "source_person_id" in self.clear(t)]
        group = ScanGroup(len(tables))
        found = await asyncio.gather(*(self.run(t, where, group.member()) for t in tables))
        for table, rows in zip(tables, found, strict=True):
            children.setdefault(table, []).extend(rows)

    async def by_name(self) -> broker_pb2.HistoryResponse:
        q = self.query
        assert q.birth_date is not None and q.surname is not None  # admitted
        dates = {q.birth_date}
        if (swap := swapped(q.birth_date)) is not None:
            dates.add(swap)
        rows = await self.block(dates)
        place = q.birth_place if "birth_place" in self.offenders_clear else None
        search = File(
            "search",
            {
                "surname": q.surname,
                "given_names": q.given_names,
                "birth_date": q.birth_date,
                "birth_place": place,
                SOURCE_COLUMN: "",
            },
        )
        scores = self.best_scores([search], rows)
        persons = self.persons(rows, scores)
        thresholds = self.model.thresholds
        linked = [p for p in persons if p.score >= thresholds.link]
        if len(linked) == 1:
            person = linked[0]
            if person.fps is not None:
                return await self.by_fps(person.fps)
            files = person.files
            children: dict[str, list[dict[str, Any]]] = {}
            await self.children_of(files, children)
            others = [f for p in persons if p is not person for f in p.files]
            possible = [
                File(f.uid, f.row, POSSIBLE, f.probability)
                for f in others
                if f.probability >= thresholds.possible
            ]
            self.notes.append(
                "the person's files carry no FPS number: linked by name and birth date"
            )
            return self.response(files, possible, children)
        candidates = sorted(
            (p for p in persons if p.score >= thresholds.possible), key=lambda p: -p.score
        )
        if linked:
            self.notes.append(
                f"{len(linked)} persons match the search: choose one (by FPS number) "
                "to see a history"
            )
        elif candidates:
            self.notes.append(
                "no person matches the search closely enough: possible matches listed"
            )
        else:
            self.notes.append("no file in any system this role may see matches the search")
        response = broker_pb2.HistoryResponse(found=False)
        for person in candidates:
            best = max(person.files, key=lambda f: f.probability)
            response.candidates.append(
                broker_pb2.HistoryCandidate(
                    fps_number=person.fps or "",
                    surname=text(best.row.get("surname")) or "",
                    given_names=text(best.row.get("given_names")) or "",
                    birth_date=text(best.row.get("birth_date")) or "",
                    files=[f"{f.source}/{f.pid or ''}" for f in person.files],
                    match_probability=person.score,
                )
            )
        return response

    def persons(self, rows: list[dict[str, Any]], scores: list[float]) -> list[Person]:
        """The people a name search's files belong to: one per FPS number, and
        each file without one joined to the FPS person it links to, else alone."""
        floor = self.model.thresholds.possible
        by_fps: dict[str, Person] = {}
        loose: list[File] = []
        for i, (row, p) in enumerate(zip(rows, scores, strict=True)):
            if p < floor:
                continue
            file = File(_uid(row, f"n{i}"), row, PROBABILISTIC, p)
            fps = row.get("fps_number") if "fps_number" in self.offenders_clear else None
            if fps is not None:
                by_fps.setdefault(str(fps), Person(str(fps))).files.append(file)
            else:
                loose.append(file)
        people = list(by_fps.values())
        unowned = loose
        if people and loose:
            anchors = [f for p in people for f in p.files]
            owner = [p for p in people for _ in p.files]
            found = self.pair_probabilities(anchors, loose)
            unowned = []
            for file in loose:
                best, n = max((found.get((a.uid, file.uid), 0.0), n) for n, a in enumerate(anchors))
                if best >= self.model.thresholds.link:
                    owner[n].files.append(file)
                else:
                    unowned.append(file)
        return people + self.clustered(unowned)

    def pair_probabilities(
        self, left: list[File], right: list[File]
    ) -> dict[tuple[str, str], float]:
        return self.model.probabilities(
            feature_table([self.features(f.uid, f.row) for f in left]),
            feature_table([self.features(f.uid, f.row) for f in right]),
        )

    def clustered(self, files: list[File]) -> list[Person]:
        """Files without an FPS number, one person per group that links
        together (a role that sees no FPS number in clear still finds one
        person in several systems)."""
        group = list(range(len(files)))

        def root(i: int) -> int:
            while group[i] != i:
                group[i] = group[group[i]]
                i = group[i]
            return i

        found = self.pair_probabilities(files, files)
        for i, a in enumerate(files):
            for j in range(i + 1, len(files)):
                if found.get((a.uid, files[j].uid), 0.0) >= self.model.thresholds.link:
                    group[root(j)] = root(i)
        people: dict[int, Person] = {}
        for i, file in enumerate(files):
            people.setdefault(root(i), Person(None)).files.append(file)
        return list(people.values())

    # -- the answer -----------------------------------------------------------

    def response(
        self,
        files: list[File],
        possible: list[File],
        children: dict[str, list[dict[str, Any]]],
    ) -> broker_pb2.HistoryResponse:
        response = broker_pb2.HistoryResponse(found=True)
        for column in IDENTITY_COLUMNS:
            values = [text(f.row.get(column)) for f in files if f.link == FPS] or [
                text(f.row.get(column)) for f in files
            ]
            common = collections.Counter(v for v in values if v is not None).most_common(1)
            if common:
                response.identity[column] = common[0][0]
        for f in files:
            response.files.append(_file(f))
        for f in sorted(possible, key=lambda f: -f.probability):
            response.possible_matches.append(_file(f))
        by_pid: dict[tuple[Any, Any], File] = {(f.source, f.pid): f for f in files if f.pid}
        by_fps: dict[tuple[Any, Any], File] = {
            (f.source, f.row.get("fps_number")): f for f in files if f.row.get("fps_number")
        }
        entries: list[tuple[str, broker_pb2.TimelineEntry]] = []
        for f in files:
            entries += [(e.date, e) for e in _entries("offenders", f.row, f)]
        for table in CHILD_TABLES:
            for row in children.get(table, ()):
                owner = by_pid.get((row[SOURCE_COLUMN], row.get("source_person_id"))) or by_fps.get(
                    (row[SOURCE_COLUMN], row.get("fps_number"))
                )
                if table == "aliases":
                    response.aliases.append(
                        broker_pb2.HistoryAlias(
                            source=str(row[SOURCE_COLUMN]),
                            source_person_id=text(row.get("source_person_id")) or "",
                            surname=text(row.get("alias_surname")) or "",
                            given_names=text(row.get("alias_given_names")) or "",
                        )
                    )
                    continue
                entries += [(e.date, e) for e in _entries(table, row, owner)]
        # Oldest first; undated facts last; ties in a stable, readable order.
        entries.sort(key=lambda item: (item[0] == "", item[0], item[1].source, item[1].kind))
        response.timeline.extend(e for _, e in entries)
        return response


def _entries(table: str, row: dict[str, Any], owner: File | None) -> list[broker_pb2.TimelineEntry]:
    out = []
    for fact in facts(table, row):
        out.append(
            broker_pb2.TimelineEntry(
                date=fact.date.isoformat() if fact.date else "",
                kind=fact.kind,
                table=table,
                source=str(row[SOURCE_COLUMN]),
                source_person_id=text(row.get("source_person_id"))
                or (owner.pid if owner is not None and owner.pid else ""),
                summary=fact.summary,
                fields=_fields(row),
                link=owner.link if owner is not None else FPS,
                match_probability=owner.probability if owner is not None else 1.0,
            )
        )
    return out


def _fields(row: dict[str, Any]) -> dict[str, str]:
    return {
        k: v for k, value in row.items() if k != SOURCE_COLUMN and (v := text(value)) is not None
    }


def _file(f: File) -> broker_pb2.HistoryFile:
    return broker_pb2.HistoryFile(
        source=f.source,
        source_person_id=f.pid or "",
        link=f.link,
        match_probability=f.probability,
        fields=_fields(f.row),
    )


def _uid(row: dict[str, Any], tag: str) -> str:
    """A file's id within one history: its system and file number, else a tag."""
    pid = row.get("source_person_id")
    return f"{row[SOURCE_COLUMN]}/{pid}" if pid is not None else f"{row[SOURCE_COLUMN]}/#{tag}"


def _literal(value: str) -> str:
    """A SQL string literal, quoted by sqlglot."""
    return exp.Literal.string(value).sql(dialect="duckdb")
