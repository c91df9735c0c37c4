"""Hand-made ``HistoryResponse`` messages for the bail brief's tests
(synthetic people, no federation needed)."""

from __future__ import annotations

import datetime as dt
import random

from accord.v1 import broker_pb2

FPS = broker_pb2.LINK_METHOD_FPS
SOURCES = ("CA-CSC", "BC", "ON", "QC", "SK", "YT")
STATUSES = ("IN_CUSTODY", "SUPERVISED", "UAL", "WARRANT_EXPIRED", "ARCHIVED", "ARCHIVED")


def entry(
    date: str, kind: str, table: str, source: str, file: str, **fields: str
) -> broker_pb2.TimelineEntry:
    return broker_pb2.TimelineEntry(
        date=date,
        kind=kind,
        table=table,
        source=source,
        source_person_id=file,
        summary=f"{kind} {' '.join(fields.values())}",
        fields=fields,
        link=FPS,
        match_probability=1.0,
    )


def history(
    surname: str = "Tremblay",
    given_names: str = "Marie Claire",
    facts_per_source: int = 4,
    seed: int = 1,
) -> broker_pb2.HistoryResponse:
    """A person with a file in every system, ``facts_per_source`` sentences,
    releases, incidents and alerts in each (a long history for large values)."""
    rng = random.Random(seed)
    out = broker_pb2.HistoryResponse(
        history_id="h-0000-test",
        role="crown_attorney",
        purpose="bail_hearing",
        found=True,
        identity={
            "fps_number": "1234567K",
            "surname": surname,
            "given_names": given_names,
            "birth_date": "1980-02-29",
            "gender": "F",
        },
    )
    out.tables_absent.append("aliases")
    timeline = []
    for i, source in enumerate(SOURCES):
        file = f"{source[:2]}-{1000 + i}"
        out.files.append(
            broker_pb2.HistoryFile(
                source=source,
                source_person_id=file,
                link=FPS,
                match_probability=1.0,
                fields={"status": STATUSES[i], "supervising_jurisdiction": source},
            )
        )
        for n in range(facts_per_source):
            day = dt.date(1998, 1, 1) + dt.timedelta(days=rng.randrange(9000))
            code = rng.choice(("CC 266", "CC 344", "CC 334", "CC 733.1"))
            timeline.append(
                entry(
                    day.isoformat(),
                    "sentenced",
                    "sentences",
                    source,
                    file,
                    offence_code=code,
                    offence_description="Offence",
                    length_days=str(30 + n),
                    sentence_type="CUSTODY",
                )
            )
            timeline.append(
                entry(day.isoformat(), "custody", "sentences", source, file, length_days="400")
            )
            later = (day + dt.timedelta(days=200)).isoformat()
            timeline.append(
                entry(
                    later,
                    "release",
                    "releases",
                    source,
                    file,
                    release_type="FULL_PAROLE",
                    status=rng.choice(("REVOKED", "COMPLETED", "SUSPENDED")),
                    conditions="Abstain from alcohol",
                )
            )
            timeline.append(
                entry(
                    later,
                    "incident",
                    "incidents",
                    source,
                    file,
                    incident_type=rng.choice(("ASSAULT", "THREAT", "CONTRABAND")),
                    institution="Kent Institution",
                    summary="Struck another inmate.",
                )
            )
            timeline.append(
                entry(
                    later,
                    "alert",
                    "alerts",
                    source,
                    file,
                    alert_type="VIOLENCE",
                    notes="History of violence toward staff.",
                )
            )
    timeline.sort(key=lambda e: e.date)
    out.timeline.extend(timeline)
    return out


def worst_case(facts_per_source: int = 60) -> broker_pb2.HistoryResponse:
    """A long history with every section over its limit and every cell long:
    the brief's two-page bound must hold for it."""
    out = history(facts_per_source=facts_per_source)
    long_text = "Reside at a community residential facility; " * 8
    for e in out.timeline:
        for key in ("conditions", "notes", "summary"):
            if key in e.fields:
                e.fields[key] = long_text
    for i in range(12):
        out.aliases.append(
            broker_pb2.HistoryAlias(
                source=SOURCES[i % 6],
                source_person_id=f"AL-{i}",
                surname=f"Tremblay-Gagnon-{i}",
                given_names="Marie-Claire Josée Anne",
            )
        )
        out.possible_matches.append(
            broker_pb2.HistoryFile(
                source=SOURCES[i % 6],
                source_person_id=f"PM-{i}",
                link=broker_pb2.LINK_METHOD_POSSIBLE,
                match_probability=0.6,
                fields={"surname": "Tremblai", "given_names": "Marie", "birth_date": "1980-02-29"},
            )
        )
        out.files.append(
            broker_pb2.HistoryFile(
                source=f"X{i}",
                source_person_id=f"X{i}-77",
                link=FPS,
                match_probability=1.0,
                fields={"status": "ARCHIVED", "assigned_facility": "Regional Reception Centre"},
            )
        )
        out.timeline.append(entry("2010-01-01", "alert", "alerts", f"X{i}", f"X{i}-77"))
        out.notes.append(f"note {i}: linked on the FPS number")
    return out
