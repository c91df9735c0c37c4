"""A file's sentence history: the current (or last) sentence, further counts
on the same warrant and earlier sentences, each with its offence and court."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .common import D1990, REF, between
from .people import BIRTH_MODE
from .vocabulary import (
    ACTIVE,
    CITY_PICK,
    COURTS,
    FED_OFFENCE,
    FEDERAL_TERMS,
    OFFENCES,
    PROV_OFFENCE,
    PROV_TYPE_ACTIVE,
    PROV_TYPE_INACTIVE,
    PROVINCIAL_TERMS,
)

if TYPE_CHECKING:
    import random

    from .people import Person


_ADULT_DAYS = 6575  # 18 years


@dataclass(slots=True)
class History:
    sentences: list[tuple[Any, ...]]  # offence_code .. sentence_type
    start: int | None  # start of the current (or last) sentence
    length: int | None
    wed: int | None  # the file's warrant expiry date
    first: int | None  # earliest sentence date
    custody: tuple[int, int] | None  # a period spent in custody
    sexual: bool
    violent: bool


class Sentencing:
    """Draws sentence histories for one source system's files."""

    def __init__(self, rng: random.Random, jur: str, *, federal: bool, lang: str) -> None:
        self.rng = rng
        self.jur = jur
        self.federal = federal
        self.lang = lang

    def _length(self, kind: str) -> int | None:
        """Days imposed: two years or more federally, less provincially."""
        rng = self.rng
        if kind == "FINE":
            return None
        if self.federal:
            lo, hi = FEDERAL_TERMS(rng)
        elif kind == "CUSTODY":  # most provincial custody terms are short
            return min(729, 1 + int(-math.log(1.0 - rng.random()) * 90))
        else:
            lo, hi = PROVINCIAL_TERMS[kind]
        return between(rng, lo, hi)

    def _sentence(
        self, code: str, court: str, sdate: int, start: int, length: int | None, kind: str
    ) -> tuple[Any, ...]:
        offence = OFFENCES[code]
        desc = offence[2] if self.lang == "fr" else offence[1]
        wed = None if length is None else start + length
        return (code, desc, court, sdate, start, length, wed, kind)

    def _court(self, jur: str) -> str:
        courts = COURTS.get(jur, (f"{jur} Provincial Court", f"{jur} Superior Court"))
        superior = self.federal or self.rng.random() < 0.05
        city = CITY_PICK[jur](self.rng) if jur in CITY_PICK else jur
        return f"{courts[1] if superior else courts[0]}, {city}"

    def _current(self, status: str, adult: int) -> tuple[str, int, int | None, bool]:
        """The current (active file) or last (closed file) sentence:
        (sentence type, start, length in days, life sentence)."""
        rng = self.rng
        r = rng.random
        if status not in ACTIVE:
            if status == "WARRANT_EXPIRED":
                lo, hi = max(adult + 60, REF - 730), REF - 1
            else:
                lo, hi = adult + 60, REF - 730
                if lo > hi:
                    hi = REF - 1
            end = between(rng, lo, hi)
            kind = "CUSTODY" if self.federal else PROV_TYPE_INACTIVE(rng)
            length = self._length(kind)
            if length is None:
                return kind, end, None, False
            start = max(adult, end - length)
            return kind, start, max(1, end - start), False
        life = self.federal and r() < 0.03
        kind = "CUSTODY" if self.federal else PROV_TYPE_ACTIVE[status](rng)
        length = None if life else self._length(kind)
        if status == "IN_CUSTODY":
            served = 0.03 + 0.57 * r()
        elif status == "SUPERVISED" and kind == "CUSTODY":  # released part-way through
            served = 0.34 + 0.61 * r()
        else:
            served = 0.02 + 0.93 * r()
        if length is None:
            start = REF - between(rng, 365, 9000)
        else:
            start = REF - max(7, int(length * served))
        if start < adult:
            start = between(rng, adult, REF - 30)
        if length is not None and start + length <= REF:
            length = REF - start + between(rng, 30, 900)
        return kind, start, length, life

    def history(self, person: Person, status: str) -> History:
        """A file's sentences (current or last first) and what follows from them."""
        rng = self.rng
        r = rng.random
        birth = person.birth if person.birth is not None else BIRTH_MODE
        adult = max(birth + _ADULT_DAYS, D1990 + 31)
        if not self.federal and status not in ACTIVE and r() < 0.03:
            # a file opened on remand, never sentenced
            end = between(rng, adult + 60, REF - 1)
            return History([], None, None, None, None, (end - 20, end), False, False)
        court_jur = person.home if self.federal else self.jur
        pick_offence = FED_OFFENCE if self.federal else PROV_OFFENCE
        kind, start, length, life = self._current(status, adult)
        sdate = start if r() < 0.7 else start - between(rng, 1, 30)
        code = "CC 235" if life else pick_offence(rng)
        court = self._court(court_jur)
        rows = [self._sentence(code, court, sdate, start, length, kind)]
        if r() < (0.4 if self.federal else 0.2):  # more counts on the same warrant
            others = dict.fromkeys(pick_offence(rng) for _ in range(between(rng, 1, 2)))
            for other in others:
                if other == code:
                    continue
                concurrent = None if length is None else max(1, int(length * (0.3 + 0.7 * r())))
                rows.append(self._sentence(other, court, sdate, start, concurrent, kind))
        bound = sdate - 60
        if self.federal:
            n_prior = 0 if r() < 0.65 else (1 if r() < 0.7 else 2)
        else:
            n_prior = 0 if r() < 0.45 else between(rng, 1, 3)
        for _ in range(min(n_prior, 4 - len(rows))):
            if bound - adult < 120:
                break
            end_p = between(rng, adult + 60, bound)
            kind_p = "CUSTODY" if self.federal else PROV_TYPE_INACTIVE(rng)
            length_p = self._length(kind_p)
            start_p = end_p if length_p is None else max(adult, end_p - length_p)
            if length_p is not None:
                length_p = max(1, end_p - start_p)
            rows.append(
                self._sentence(
                    pick_offence(rng), self._court(court_jur), start_p, start_p, length_p, kind_p
                )
            )
            bound = start_p - 60
        weds = [row[6] for row in rows if row[6] is not None]
        kinds = {OFFENCES[row[0]][3] for row in rows}
        custody = next(
            (
                (row[4], min(REF - 1, row[6] if row[6] is not None else REF - 1))
                for row in rows
                if row[7] in ("CUSTODY", "INTERMITTENT")
            ),
            None,
        )
        return History(
            rows,
            start,
            length,
            max(weds) if weds and not life else None,
            min(row[3] for row in rows),
            custody,
            "sexual" in kinds,
            "violent" in kinds,
        )
