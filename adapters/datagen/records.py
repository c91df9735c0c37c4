"""One source system's files as rows, in the generator's own column order
(``COLUMNS``): the file itself with its placement, its sentences (drawn by
``sentences``) and its releases, incidents, alerts, aliases and health notes,
each drawn to fit the file's status and history."""

from __future__ import annotations

import datetime as dt
import random
from typing import TYPE_CHECKING, Any

from .common import D1990, REF, REFERENCE_DATE, between, decreasing, strip_accents
from .people import name_variant
from .profiles import is_federal, profile
from .sentences import Sentencing
from .variants import vary
from .vocabulary import (
    ACTIVE,
    ALERT_TEXT,
    ALERT_TYPE,
    AREA_CODES,
    CITY_PICK,
    CONDITIONS,
    CSC_REGION,
    FED_RELEASE,
    GIVEN_EN,
    GIVEN_FR,
    HEALTH_NOTES,
    INCIDENT_TEXT,
    INCIDENT_TYPE,
    JURISDICTIONS,
    NICKNAMES,
    PERSON_LEVEL,
    POSTAL_ALPHA,
    POSTAL_LETTERS,
    PROV_FACILITIES,
    REGION_INSTITUTIONS,
    STREETS_EN,
    STREETS_FR,
    SURNAMES_EN,
    SURNAMES_FR,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from accord.federation import Source

    from .people import Person
    from .sentences import History


Row = tuple[Any, ...]

#: The generator's own column order per logical table; ``generate`` maps
#: these onto the federation's logical model by name.
COLUMNS: dict[str, tuple[str, ...]] = {
    "offenders": (
        "source_person_id",
        "fps_number",
        "surname",
        "given_names",
        "birth_date",
        "birth_place",
        "gender",
        "address",
        "photo_ref",
        "status",
        "supervising_jurisdiction",
        "assigned_facility",
        "security_level",
        "planned_release_date",
        "warrant_expiry_date",
    ),
    "aliases": ("source_person_id", "fps_number", "alias_surname", "alias_given_names"),
    "sentences": (
        "source_person_id",
        "fps_number",
        "offence_code",
        "offence_description",
        "court",
        "sentence_date",
        "start_date",
        "length_days",
        "warrant_expiry_date",
        "sentence_type",
    ),
    "releases": (
        "source_person_id",
        "fps_number",
        "release_type",
        "release_date",
        "conditions",
        "parole_officer",
        "parole_office_phone",
        "status",
        "eligibility_date",
    ),
    "incidents": (
        "source_person_id",
        "fps_number",
        "occurred_on",
        "incident_type",
        "institution",
        "summary",
    ),
    "alerts": ("source_person_id", "fps_number", "alert_type", "raised_on", "notes"),
    "health_notes": ("source_person_id", "fps_number", "noted_on", "note"),
    "victim_cases": (
        "source_person_id",
        "fps_number",
        "victim_registration",
        "offence_code",
        "sentence_date",
    ),
}


class SourceBuilder:
    """One source system's files: ``add`` a file per person, then read
    ``rows`` (logical table -> rows in ``COLUMNS`` order)."""

    def __init__(self, source: Source, rng: random.Random, n_files: int) -> None:
        self.source = source
        self.rng = rng
        self.jur = source.jurisdiction
        self.federal = is_federal(source)
        self.profile = profile(source)
        self.lang = self.profile.language
        self.sentencing = Sentencing(rng, self.jur, federal=self.federal, lang=self.lang)
        self.rows: dict[str, list[Row]] = {t: [] for t in source.tables}
        #: file number -> the person's FPS number, whether or not the file carries it
        self.truth: dict[str, str] = {}
        self.serves = frozenset(source.tables)
        digits = self.profile.id_digits
        numbers = rng.sample(range(10 ** (digits - 1), 10**digits), n_files)
        self._ids: Iterator[int] = iter(numbers)
        if self.federal:
            self.cities = CITY_PICK["ON"]
            self.facilities: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        else:
            self.cities = CITY_PICK.get(self.jur, decreasing((self.jur,)))
            generic = (f"{self.jur} Correctional Centre",)
            self.facilities = PROV_FACILITIES.get(self.jur, (generic, generic))

    # -- identity ---------------------------------------------------------

    def _next_id(self, opened: int | None = None) -> str:
        """The system's own file number (some carry the year the file was opened)."""
        year = dt.date.fromordinal(opened).year if opened is not None else REFERENCE_DATE.year
        return self.profile.id_format.format(n=next(self._ids), y=year)

    def _address(self, jur: str) -> str:
        rng = self.rng
        city = CITY_PICK[jur](rng) if jur in CITY_PICK else jur
        letters = POSTAL_LETTERS.get(jur, "K")
        postal = (
            f"{rng.choice(letters)}{rng.randrange(10)}{rng.choice(POSTAL_ALPHA)} "
            f"{rng.randrange(10)}{rng.choice(POSTAL_ALPHA)}{rng.randrange(10)}"
        )
        number = between(rng, 1, 9999)
        if jur == "QC":
            return f"{number}, {rng.choice(STREETS_FR)}, {city} QC {postal}"
        return f"{number} {rng.choice(STREETS_EN)}, {city} {jur} {postal}"

    def _phone(self, jur: str | None) -> str:
        area = self.rng.choice(AREA_CODES.get(jur or self.jur, ("613",)))
        return f"{area}-555-01{self.rng.randrange(100):02d}"

    def _officer(self) -> str:
        rng = self.rng
        french = self.lang == "fr" or rng.random() < 0.1
        surname = rng.choice(SURNAMES_FR if french else SURNAMES_EN)
        given = rng.choice(GIVEN_FR if french else GIVEN_EN)
        return f"{given[0]}. {surname}"

    def _conditions(self) -> str:
        pool = CONDITIONS[self.lang]
        return "; ".join(self.rng.sample(pool, between(self.rng, 1, 3)))

    # -- placement ------------------------------------------------------------

    def _institution(self, person: Person) -> tuple[str, str, str]:
        """A facility, its jurisdiction and the person's security level."""
        rng = self.rng
        women = person.gender == "F"
        if self.federal:
            region = CSC_REGION.get(person.home, "ONT")
            name, jur, level, _ = rng.choice(REGION_INSTITUTIONS[(region, women)])
            if level == "MULTI":
                level = PERSON_LEVEL(rng)
            return name, jur, level
        pool = self.facilities[1 if women else 0]
        level = PERSON_LEVEL(rng)
        return rng.choice(pool), self.jur, level

    def _community_office(self, jur: str) -> str:
        rng = self.rng
        city = CITY_PICK[jur](rng) if jur in CITY_PICK else jur
        french = jur == "QC"
        if self.federal:
            x = rng.random()
            if x < 0.2:
                return (
                    f"Centre correctionnel communautaire de {city}"
                    if french
                    else f"{city} Community Correctional Centre"
                )
            if x < 0.4:
                return (
                    f"Centre résidentiel communautaire de {city}"
                    if french
                    else f"{city} Community Residential Facility"
                )
            return (
                f"Bureau de libération conditionnelle de {city}"
                if french
                else f"{city} Parole Office"
            )
        if french:
            return f"Bureau de probation de {city}"
        if self.jur == "ON":
            return f"{city} Probation and Parole Office"
        return f"{city} Community Corrections"

    def _placement(
        self, person: Person, status: str, h: History
    ) -> tuple[str | None, str | None, str | None, int | None]:
        """(assigned facility, supervising jurisdiction, security level,
        planned release date) of a file."""
        rng = self.rng
        if status == "IN_CUSTODY":
            facility, jur, level = self._institution(person)
            planned = None
            if h.start is not None and h.length is not None:  # none for a life sentence
                planned = h.start + (2 * h.length) // 3
                if planned <= REF + 60:
                    planned = REF + between(rng, 60, 400)
                if h.wed is not None:
                    planned = min(planned, h.wed)
            return facility, jur, level, planned
        if status in ACTIVE:
            if self.federal:
                jur = person.home if rng.random() < 0.85 else rng.choice(JURISDICTIONS)
            else:
                jur = self.jur
            return self._community_office(jur), jur, None, None
        if rng.random() < 0.25:  # last known placement kept on a closed file
            jur = person.home if self.federal else self.jur
            return self._community_office(jur), jur, None, None
        return None, None, None, None

    # -- one file ---------------------------------------------------------------

    def add(self, person: Person, status: str, *, exact: bool = False) -> None:
        rng = self.rng
        r = rng.random
        h = self.sentencing.history(person, status)
        pid = self._next_id(h.first if h.first is not None else (h.custody or (None,))[0])
        fps: str | None = person.fps
        surname, given = person.surname, person.given
        if not exact and not self.federal:
            if r() < self.profile.fps_missing:
                fps = None
            if r() < self.profile.name_variant:
                surname, given = name_variant(rng, surname, given)
        birth = person.birth
        if not exact and not self.federal:
            # Its own generator: the file's other columns stay as they were.
            own = random.Random(f"{self.source.code}/{pid}/{person.fps}")  # noqa: S311
            surname, given, birth = vary(own, surname, given, birth)
        active = status in ACTIVE
        facility, sup_jur, level, planned = self._placement(person, status, h)
        address = None
        if r() < (0.85 if status == "SUPERVISED" else 0.6 if active else 0.45):
            address = self._address(person.home if self.federal or r() < 0.2 else self.jur)
        photo = None
        if r() < (0.95 if active else 0.55):
            photo = self.profile.photo_format.format(id=pid)
        self.truth[pid] = person.fps
        self.rows["offenders"].append(
            (
                pid,
                fps,
                surname,
                given,
                birth,
                person.birth_place,
                person.gender,
                address,
                photo,
                status,
                sup_jur,
                facility,
                level,
                planned,
                h.wed,
            )
        )
        if "sentences" in self.serves:
            self.rows["sentences"].extend((pid, fps, *row) for row in h.sentences)
        self._children(pid, fps, person, status, h, facility, sup_jur, surname, given)

    def _children(
        self,
        pid: str,
        fps: str | None,
        person: Person,
        status: str,
        h: History,
        facility: str | None,
        sup_jur: str | None,
        surname: str,
        given: str | None,
    ) -> None:
        r = self.rng.random
        if "releases" in self.serves:
            self._releases(pid, fps, status, h, sup_jur)
        if "incidents" in self.serves and h.custody is not None:
            self._incidents(pid, fps, person, h, facility if status == "IN_CUSTODY" else None)
        if "alerts" in self.serves:
            self._alerts(pid, fps, person, status, h)
        if "aliases" in self.serves and r() < 0.15:
            self._aliases(pid, fps, surname, given)
        if "health_notes" in self.serves and r() < 0.25:
            self._health(pid, fps, h)

    def _releases(
        self, pid: str, fps: str | None, status: str, h: History, sup_jur: str | None
    ) -> None:
        rng = self.rng
        r = rng.random
        out = self.rows["releases"]
        if h.start is None:
            return
        start, length = h.start, h.length
        term = length if length is not None else 9125  # a life sentence: 25 years to parole
        kind = h.sentences[0][7]
        if status in ("SUPERVISED", "UAL"):
            state = "ACTIVE" if status == "SUPERVISED" else "SUSPENDED"
            elig: int | None
            if self.federal:
                rtype = "FULL_PAROLE" if length is None else FED_RELEASE(rng)
                elig = {
                    "DAY_PAROLE": start + term // 6,
                    "FULL_PAROLE": start + term // 3,
                    "STATUTORY_RELEASE": start + 2 * term // 3,
                }.get(rtype)
                rel = between(rng, min(start + term // 6, REF - 2), REF - 1)
            elif kind == "CUSTODY":
                rtype = "FULL_PAROLE" if self.profile.parole_board else "TEMPORARY_ABSENCE"
                elig = start + term // 3 if self.profile.parole_board else None
                rel = between(rng, min(start + term // 3, REF - 2), REF - 1)
            else:
                rtype, elig, rel = "PROBATION", None, start
            if r() < 0.12 and rel - start > 60:
                out.append(
                    (
                        pid,
                        fps,
                        rtype,
                        between(rng, start, rel - 30),
                        self._conditions(),
                        self._officer(),
                        self._phone(sup_jur),
                        "REVOKED",
                        elig,
                    )
                )
            out.append(
                (
                    pid,
                    fps,
                    rtype,
                    rel,
                    self._conditions(),
                    self._officer(),
                    self._phone(sup_jur),
                    state,
                    elig,
                )
            )
        elif status == "IN_CUSTODY":
            if (self.federal and r() < 0.6) or (self.profile.parole_board and r() < 0.35):
                # Eligibility known, no release yet: no date, no status.
                day = r() < 0.5
                out.append(
                    (
                        pid,
                        fps,
                        "DAY_PAROLE" if day else "FULL_PAROLE",
                        None,
                        None,
                        None,
                        None,
                        None,
                        start + (term // 6 if day else term // 3),
                    )
                )
            if r() < 0.1:
                out.append(
                    (
                        pid,
                        fps,
                        "TEMPORARY_ABSENCE",
                        between(rng, start, REF - 1),
                        self._conditions() if r() < 0.5 else None,
                        None,
                        None,
                        "COMPLETED",
                        None,
                    )
                )
        elif h.custody is not None and r() < 0.8:
            lo, hi = h.custody
            rtype = (
                ("STATUTORY_RELEASE" if r() < 0.6 else "FULL_PAROLE")
                if self.federal
                else ("TEMPORARY_ABSENCE" if r() < 0.3 else "PROBATION")
            )
            rel = between(rng, lo + (hi - lo) // 3, hi)
            if r() < 0.1:
                out.append(
                    (
                        pid,
                        fps,
                        rtype,
                        between(rng, lo, rel),
                        self._conditions(),
                        self._officer(),
                        self._phone(sup_jur),
                        "REVOKED",
                        None,
                    )
                )
            out.append(
                (
                    pid,
                    fps,
                    rtype,
                    rel,
                    self._conditions() if r() < 0.8 else None,
                    self._officer() if r() < 0.7 else None,
                    self._phone(sup_jur) if r() < 0.6 else None,
                    "COMPLETED",
                    lo + (hi - lo) // 3 if rtype == "FULL_PAROLE" else None,
                )
            )
        elif not self.federal and any(s[7] == "PROBATION" for s in h.sentences) and r() < 0.7:
            probation = next(s for s in h.sentences if s[7] == "PROBATION")
            out.append(
                (
                    pid,
                    fps,
                    "PROBATION",
                    probation[4],
                    self._conditions(),
                    self._officer() if r() < 0.7 else None,
                    None,
                    "COMPLETED",
                    None,
                )
            )

    def _incidents(
        self, pid: str, fps: str | None, person: Person, h: History, facility: str | None
    ) -> None:
        rng = self.rng
        if h.custody is None or rng.random() >= (0.3 if self.federal else 0.15):
            return
        lo, hi = h.custody
        if hi <= lo:
            return
        texts = INCIDENT_TEXT[self.lang]
        out = self.rows["incidents"]
        for _ in range(between(rng, 1, 3)):
            kind = INCIDENT_TYPE(rng)
            where = (
                facility
                if facility is not None and rng.random() < 0.7
                else (self._institution(person)[0])
            )
            out.append((pid, fps, between(rng, lo, hi), kind, where, rng.choice(texts[kind])))

    def _alerts(self, pid: str, fps: str | None, person: Person, status: str, h: History) -> None:
        rng = self.rng
        r = rng.random
        kinds: list[str] = []
        if h.sexual and r() < 0.35:  # registration is ordered, not automatic
            kinds.append("SEX_OFFENDER")
        if h.violent and status in ACTIVE and r() < (0.1 if self.federal else 0.04):
            kinds.append("HIGH_RISK")
        if person.foreign and r() < (0.2 if self.federal else 0.08):
            kinds.append("IMMIGRATION_HOLD")
        if r() < 0.04:
            kinds.append(ALERT_TYPE(rng))
        if not kinds:
            return
        lo = h.first if h.first is not None else D1990
        texts = ALERT_TEXT[self.lang]
        out = self.rows["alerts"]
        for kind in dict.fromkeys(kinds):
            out.append(
                (
                    pid,
                    fps,
                    kind,
                    between(rng, lo, REF - 1),
                    rng.choice(texts[kind]) if r() < 0.9 else None,
                )
            )

    def _aliases(self, pid: str, fps: str | None, surname: str, given: str | None) -> None:
        rng = self.rng
        out = self.rows["aliases"]
        for _ in range(1 if rng.random() < 0.75 else 2):
            x = rng.random()
            if x < 0.4:
                pool = SURNAMES_FR if self.lang == "fr" else SURNAMES_EN
                out.append((pid, fps, rng.choice(pool), given))
            elif x < 0.75:
                out.append((pid, fps, surname, rng.choice(NICKNAMES)))
            elif x < 0.9 and given:
                out.append((pid, fps, given.split(" ")[0], surname))  # names swapped
            else:
                out.append((pid, fps, strip_accents(surname).replace("ll", "l"), given))

    def _health(self, pid: str, fps: str | None, h: History) -> None:
        rng = self.rng
        lo = h.start if h.start is not None else REF - 3650
        out = self.rows["health_notes"]
        for _ in range(between(rng, 1, 3)):
            out.append((pid, fps, between(rng, lo, REF - 1), rng.choice(HEALTH_NOTES)))

    def add_minimal(self, person: Person) -> None:
        """A file with only an id, a surname and a status, and one bare child row
        per child table: every nullable column holds a NULL somewhere."""
        pid = self._next_id()
        self.rows["offenders"].append(
            (
                pid,
                None,
                person.surname,
                None,
                None,
                None,
                None,
                None,
                None,
                "ARCHIVED",
                None,
                None,
                None,
                None,
                None,
            )
        )
        for table, rows in self.rows.items():
            if table != "offenders" and table in COLUMNS:
                rows.append((pid,) + (None,) * (len(COLUMNS[table]) - 1))
