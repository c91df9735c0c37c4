"""The people in the synthetic data and which systems hold a file on each.

The national picture follows DOMAIN.md. At scale 1 the federal OMS holds
about 22,000 active files (13,000 in custody, 9,000 on conditional release,
a few hundred unlawfully at large) and 125,000 inactive ones; the provincial
systems hold 3,000 (Yukon) to 100,000 (Ontario) files each. Everyone who
served a federal sentence and comes from a province in the federation also
has a file in that province's system, and some people have files in two
provinces. FPS numbers are random and unique. Provincial files carry the FPS
number only in part (15-25% have none) and a few spell the name differently
(``name_variant``: accents dropped, upper case), so linking on name and birth
date is exercised too.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .common import Pick, strip_accents
from .profiles import OMS_STATUS_COUNTS, is_federal, profile
from .vocabulary import (
    ACTIVE,
    CITY_PICK,
    FEDERAL_HOME,
    FOREIGN_BIRTHPLACES,
    FRENCH_SHARE,
    GIVEN_EN_F,
    GIVEN_EN_M,
    GIVEN_FR_F,
    GIVEN_FR_M,
    INACTIVE_STATUS,
    JURISDICTIONS,
    PROV_STATUS,
    SURNAMES_EN,
    SURNAMES_FR,
)

if TYPE_CHECKING:
    from accord.federation import Federation, Source


_BIRTH_MIN = dt.date(1940, 1, 1).toordinal()
_BIRTH_MAX = dt.date(2006, 12, 31).toordinal()
BIRTH_MODE = dt.date(1987, 6, 1).toordinal()


@dataclass(slots=True)
class Person:
    fps: str
    surname: str
    given: str | None
    birth: int | None  # date ordinal
    birth_place: str | None
    gender: str
    home: str
    foreign: bool
    fed_status: str | None = None


class _FpsNumbers:
    """Unique FPS numbers ("1234567K") from an affine permutation of 7 digits."""

    _MOD = 9_000_000
    _LETTERS = "ABCDEFGHJKLMNPRSTVWXYZ"

    def __init__(self, rng: random.Random) -> None:
        while True:
            self._a = rng.randrange(self._MOD // 3, self._MOD)
            if math.gcd(self._a, self._MOD) == 1:
                break
        self._b = rng.randrange(self._MOD)
        self._next = 0

    def __call__(self) -> str:
        n = 1_000_000 + (self._a * self._next + self._b) % self._MOD
        self._next += 1
        return f"{n}{self._LETTERS[(n * 7) % len(self._LETTERS)]}"


def _given_names(rng: random.Random, gender: str, french: bool) -> str:
    if gender == "X":
        gender = "F" if rng.random() < 0.5 else "M"
    if french:
        pool = GIVEN_FR_F if gender == "F" else GIVEN_FR_M
    else:
        pool = GIVEN_EN_F if gender == "F" else GIVEN_EN_M
    first = rng.choice(pool)
    if rng.random() < 0.35:
        second = rng.choice(pool)
        if second != first:
            return f"{first} {second}"
    return first


def _make_person(rng: random.Random, home: str, fps: str) -> Person:
    r = rng.random
    french = r() < FRENCH_SHARE.get(home, 0.07)
    x = r()
    gender = "M" if x < 0.875 else ("F" if x < 0.996 else "X")
    pool = SURNAMES_FR if french else SURNAMES_EN
    surname = rng.choice(pool)
    if r() < 0.03:
        other = rng.choice(SURNAMES_FR if r() < 0.5 else SURNAMES_EN)
        if other != surname:
            surname = f"{surname}-{other}"
    given = _given_names(rng, gender, french)
    birth = int(rng.triangular(_BIRTH_MIN, _BIRTH_MAX, BIRTH_MODE))
    foreign = r() < 0.09
    if foreign:
        place = rng.choice(FOREIGN_BIRTHPLACES)
    else:
        place_jur = home if r() < 0.85 else rng.choice(JURISDICTIONS)
        city = CITY_PICK.get(place_jur)
        place = f"{city(rng)}, {place_jur}" if city is not None else place_jur
    return Person(fps, surname, given, birth, place, gender, home, foreign)


def name_variant(rng: random.Random, surname: str, given: str | None) -> tuple[str, str | None]:
    x = rng.random()
    if x < 0.5:  # entered in capitals on an old terminal, accents lost
        return strip_accents(surname).upper(), given and strip_accents(given).upper()
    if x < 0.8:  # accents dropped
        return strip_accents(surname), given and strip_accents(given)
    return surname.upper(), given and given.upper()


def files_per_source(
    federation: Federation, seed: int, scale: float
) -> dict[str, list[tuple[Person, str, bool]]]:
    """Which people have a file in which system, and the file's status.

    The third item says the file is written exactly as the person is known
    (no missing FPS, no spelling variant): the fixed edge cases use it.
    """
    rng = random.Random(seed)  # noqa: S311 (synthetic data, not security)
    fps = _FpsNumbers(rng)
    federal_statuses: list[str] = []
    for status, count in OMS_STATUS_COUNTS:
        federal_statuses += [status] * max(1, round(count * scale))
    rng.shuffle(federal_statuses)
    federal: list[Person] = []
    for status in federal_statuses:
        person = _make_person(rng, FEDERAL_HOME(rng), fps())
        person.fed_status = status
        federal.append(person)

    files: dict[str, list[tuple[Person, str, bool]]] = {}
    local: dict[str, list[Person]] = {}
    provinces = [s for s in federation.sources.values() if not is_federal(s)]
    for source in federation.sources.values():
        if is_federal(source):
            files[source.code] = [(p, p.fed_status or "ARCHIVED", False) for p in federal]
            continue
        files[source.code], local[source.code] = _provincial_files(source, federal, rng, fps, scale)
    # Some provincial offenders also have a closed file in another province.
    for source in provinces:
        others = [(s.code, float(profile(s).size)) for s in provinces if s.code != source.code]
        if not others:
            break
        pick_other = Pick(others)
        for person in local[source.code]:
            if rng.random() < 0.03:
                files[pick_other(rng)].append((person, INACTIVE_STATUS(rng), False))

    for source in federation.sources.values():
        rng.shuffle(files[source.code])
    _edge_cases(federation, files, fps)
    return files


def _provincial_files(
    source: Source, federal: list[Person], rng: random.Random, fps: _FpsNumbers, scale: float
) -> tuple[list[tuple[Person, str, bool]], list[Person]]:
    """A province's files: federal offenders from that province (or who
    moved through it), then people known only provincially."""
    jur = source.jurisdiction
    size = profile(source).size
    moved = 0.02 * size / 100_000  # bigger systems see more people from elsewhere
    entries: list[tuple[Person, str, bool]] = []
    for person in federal:
        if person.home == jur or rng.random() < moved:
            if person.fed_status in ACTIVE or person.home != jur:
                status = INACTIVE_STATUS(rng)
            else:  # provincial offenders may have served federal sentences before
                status = PROV_STATUS(rng)
            entries.append((person, status, False))
    target = max(10, round(size * scale))
    people = []
    for _ in range(max(0, target - len(entries))):
        home = jur if rng.random() < 0.95 else FEDERAL_HOME(rng)
        people.append(_make_person(rng, home, fps()))
    statuses = [PROV_STATUS(rng) for _ in people]
    # Every status occurs in every system, however small the scale.
    missing = [s for s in PROV_STATUS.items if s not in statuses]
    slots = rng.sample(range(len(people)), min(len(missing), len(people)))
    for status, index in zip(missing, slots, strict=False):
        statuses[index] = status
    entries += [(p, s, False) for p, s in zip(people, statuses, strict=True)]
    return entries, people


def _edge_cases(
    federation: Federation, files: dict[str, list[tuple[Person, str, bool]]], fps: _FpsNumbers
) -> None:
    """Fixed edge cases in every system: an apostrophe (one person known to
    all systems), hyphens and accents, a leap-day birth date. (The bare file
    with NULLs is added by the builder.)"""
    obrien = Person(
        fps(),
        "O'Brien",
        "Seán Patrick",
        dt.date(1971, 3, 17).toordinal(),
        "St. John's, NL",
        "M",
        "NL",
        False,
    )
    for source in federation.sources.values():
        entries = files[source.code]
        entries.append((obrien, "SUPERVISED" if is_federal(source) else "ARCHIVED", True))
        home = "QC" if is_federal(source) else source.jurisdiction
        hyphen = Person(
            fps(),
            "Roy-Tremblay",
            "Marie-Ève",
            dt.date(1988, 2, 29).toordinal(),
            "Trois-Rivières, QC",
            "F",
            home,
            False,
        )
        entries.append((hyphen, "IN_CUSTODY", True))
