"""Deterministic synthetic data for the federation's source systems.

Everything this module produces is invented. Names are drawn at random from
lists of common Canadian surnames and given names and combined freely; FPS
numbers and system ids are random; telephone numbers use the fictional
555-01xx range. No real person's data is used. Institution, court and city
names are public place names.

The national picture follows DOMAIN.md. At scale 1 the federal OMS holds
about 22,000 active files (13,000 in custody, 9,000 on conditional release,
a few hundred unlawfully at large) and 125,000 inactive ones; the provincial
systems hold 3,000 (Yukon) to 100,000 (Ontario) files each. Everyone who
served a federal sentence and comes from a province in the federation also
has a file in that province's system, and some people have files in two
provinces. Provincial files carry the FPS number only in part (15-25% have
none) and a few spell the name differently (accents dropped, upper case), so
linking on name and birth date is exercised too.

Values are produced in the federation's logical model (``generate``) and
written into each source's own physical schema (``write_sqlite``): physical
table and column names, codes and text date formats all come from the
source's mapping in the federation file.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import os
import random
import secrets
import sqlite3
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pyarrow as pa

from accord.errors import ConfigError
from accord.federation import LOGICAL_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from accord.federation import ColumnMapping, Federation, LogicalTable, Source, TableMapping

__all__ = ["REFERENCE_DATE", "generate", "write_federation_data", "write_sqlite"]

#: "Today" for the generated data. Fixed, so the same seed gives the same
#: files whenever they are generated; planned releases lie after it.
REFERENCE_DATE = dt.date(2026, 11, 1)

_T = TypeVar("_T")
Row = tuple[Any, ...]

_REF = REFERENCE_DATE.toordinal()
_EPOCH = dt.date(1970, 1, 1).toordinal()
_D1990 = dt.date(1990, 1, 1).toordinal()
_BIRTH_MIN = dt.date(1940, 1, 1).toordinal()
_BIRTH_MAX = dt.date(2006, 12, 31).toordinal()
_BIRTH_MODE = dt.date(1987, 6, 1).toordinal()
_ADULT_DAYS = 6575  # 18 years

_ACTIVE = frozenset({"IN_CUSTODY", "SUPERVISED", "UAL"})

#: The generator's own column order per logical table; ``generate`` maps
#: these onto the federation's logical model by name.
_COLUMNS: dict[str, tuple[str, ...]] = {
    "offenders": (
        "source_person_id", "fps_number", "surname", "given_names", "birth_date",
        "birth_place", "gender", "address", "photo_ref", "status",
        "supervising_jurisdiction", "assigned_facility", "security_level",
        "planned_release_date", "warrant_expiry_date",
    ),
    "aliases": ("source_person_id", "fps_number", "alias_surname", "alias_given_names"),
    "sentences": (
        "source_person_id", "fps_number", "offence_code", "offence_description", "court",
        "sentence_date", "start_date", "length_days", "warrant_expiry_date", "sentence_type",
    ),
    "releases": (
        "source_person_id", "fps_number", "release_type", "release_date", "conditions",
        "parole_officer", "parole_office_phone", "status", "eligibility_date",
    ),
    "incidents": (
        "source_person_id", "fps_number", "occurred_on", "incident_type", "institution",
        "summary",
    ),
    "alerts": ("source_person_id", "fps_number", "alert_type", "raised_on", "notes"),
    "health_notes": ("source_person_id", "fps_number", "noted_on", "note"),
}


# --------------------------------------------------------------------------
# Small helpers


class _Pick(Generic[_T]):
    """Weighted choice with one random draw (faster than Random.choices)."""

    __slots__ = ("cum", "items", "total")

    def __init__(self, pairs: Sequence[tuple[_T, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cum = list(itertools.accumulate(weight for _, weight in pairs))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random) -> _T:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


def _decreasing(items: Sequence[_T]) -> _Pick[_T]:
    """Earlier items more likely (the first city of a province is its largest)."""
    return _Pick([(item, 1.0 / (i + 1)) for i, item in enumerate(items)])


def _between(rng: random.Random, lo: int, hi: int) -> int:
    """A uniform integer in [lo, hi]; lo when the range is empty."""
    if hi <= lo:
        return lo
    return lo + int(rng.random() * (hi - lo + 1))


_ASCII_CACHE: dict[str, str] = {}


def _strip_accents(text: str) -> str:
    out = _ASCII_CACHE.get(text)
    if out is None:
        decomposed = unicodedata.normalize("NFKD", text)
        out = "".join(c for c in decomposed if not unicodedata.combining(c))
        _ASCII_CACHE[text] = out
    return out


# --------------------------------------------------------------------------
# Reference lists (public place names; invented person names are combined
# at random from common-name lists)

_JURISDICTIONS = ("BC", "ON", "QC", "SK", "YT", "AB", "MB", "NS", "NB", "NL", "PE", "NT", "NU")

#: Where federal offenders come from (share of the federal population).
_FEDERAL_HOME = _Pick([
    ("ON", 29.0), ("QC", 19.0), ("BC", 12.0), ("AB", 14.0), ("SK", 7.0), ("MB", 8.0),
    ("NS", 3.0), ("NB", 3.0), ("NL", 2.0), ("PE", 0.4), ("YT", 0.4), ("NT", 0.6), ("NU", 0.6),
])

_CITIES: dict[str, tuple[str, ...]] = {
    "BC": ("Vancouver", "Surrey", "Prince George", "Kamloops", "Nanaimo", "Victoria", "Kelowna",
           "Chilliwack"),
    "ON": ("Toronto", "Ottawa", "Hamilton", "London", "Thunder Bay", "Sudbury", "Kingston",
           "Windsor", "Sault Ste. Marie", "Brampton"),
    "QC": ("Montréal", "Québec", "Laval", "Gatineau", "Sherbrooke", "Trois-Rivières", "Saguenay",
           "Longueuil", "Rimouski", "Val-d'Or", "Sept-Îles"),
    "SK": ("Saskatoon", "Regina", "Prince Albert", "Moose Jaw", "North Battleford", "La Ronge"),
    "YT": ("Whitehorse", "Dawson City", "Watson Lake"),
    "AB": ("Edmonton", "Calgary", "Red Deer", "Lethbridge", "Grande Prairie"),
    "MB": ("Winnipeg", "Brandon", "Thompson"),
    "NS": ("Halifax", "Sydney", "Truro"),
    "NB": ("Moncton", "Saint John", "Fredericton", "Bathurst"),
    "NL": ("St. John's", "Corner Brook"),
    "PE": ("Charlottetown", "Summerside"),
    "NT": ("Yellowknife", "Inuvik"),
    "NU": ("Iqaluit", "Rankin Inlet"),
}
_CITY_PICK = {jur: _decreasing(cities) for jur, cities in _CITIES.items()}

_FOREIGN_BIRTHPLACES: tuple[str, ...] = (
    "Port-au-Prince, Haiti", "Kingston, Jamaica", "Manila, Philippines",
    "Ho Chi Minh City, Viet Nam", "Mogadishu, Somalia", "Beirut, Lebanon", "Ludhiana, India",
    "Lisbon, Portugal", "Bogotá, Colombia", "San Salvador, El Salvador", "Kinshasa, DR Congo",
    "Alger, Algérie", "Casablanca, Maroc", "Glasgow, United Kingdom", "Detroit, United States",
)

_POSTAL_LETTERS = {
    "BC": "V", "ON": "KLMNP", "QC": "HGJ", "SK": "S", "YT": "Y", "AB": "T", "MB": "R",
    "NS": "B", "NB": "E", "NL": "A", "PE": "C", "NT": "X", "NU": "X",
}
_POSTAL_ALPHA = "ABCEGHJKLMNPRSTVWXYZ"

_AREA_CODES = {
    "BC": ("604", "250", "778"), "ON": ("416", "613", "705", "519", "807"),
    "QC": ("514", "418", "819", "450"), "SK": ("306", "639"), "YT": ("867",),
    "AB": ("403", "780"), "MB": ("204",), "NS": ("902",), "NB": ("506",), "NL": ("709",),
    "PE": ("902",), "NT": ("867",), "NU": ("867",),
}

_STREETS_EN: tuple[str, ...] = (
    "Main Street", "King Street", "Queen Street", "Victoria Avenue", "1st Avenue",
    "2nd Avenue", "Oak Street", "Maple Drive", "Birch Crescent", "Park Road", "Lakeshore Road",
    "Hillside Avenue", "River Road", "Elm Street", "Cedar Lane", "Railway Street",
)
_STREETS_FR: tuple[str, ...] = (
    "rue Principale", "rue Saint-Jean", "rue Notre-Dame", "rue de l'Église", "chemin du Lac",
    "avenue des Érables", "rue Sainte-Catherine", "rang Saint-Joseph", "boulevard des Laurentides",
    "rue du Moulin", "avenue Champlain",
)

_SURNAMES_FR: tuple[str, ...] = (
    "Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin",
    "Gagné", "Ouellet", "Pelletier", "Bélanger", "Lévesque", "Bergeron", "Leblanc", "Paquette",
    "Girard", "Simard", "Boucher", "Caron", "Beaulieu", "Cloutier", "Dubé", "Poirier",
    "Fournier", "Lapointe", "Leclerc", "Lefebvre", "Poulin", "Thibault", "St-Pierre", "Nadeau",
    "Martin", "Landry", "Martel", "Bédard", "Grenier", "Lessard", "Bernier", "Richard",
    "Michaud", "Hébert", "Desjardins", "Couture", "Turcotte", "Lachance", "Parent", "Blais",
    "Gosselin", "Savard", "Proulx", "Beaudoin", "Demers", "Perreault", "Boudreau", "Lemieux",
    "Cyr", "Perron", "Dufour", "Dion", "Mercier", "Bolduc", "Bérubé", "Boisvert", "Langlois",
    "Ménard", "Thériault", "Gélinas", "Désilets", "Brisson", "Vézina", "Létourneau",
    "Charbonneau", "Paré", "Séguin", "Lacasse", "Ducharme", "D'Amours", "Chénier",
)
_SURNAMES_EN: tuple[str, ...] = (
    "Smith", "Brown", "Wilson", "Taylor", "Campbell", "Anderson", "Jones", "Williams",
    "Johnson", "Miller", "MacDonald", "Thompson", "White", "Lee", "Wong", "Singh", "Patel", "Li",
    "Chen", "Nguyen", "Kim", "Clark", "Young", "Walker", "Robinson", "Scott", "Stewart", "Reid",
    "Murray", "Ross", "Fraser", "Graham", "Morrison", "Kennedy", "Hughes", "O'Brien", "O'Neil",
    "O'Connor", "O'Reilly", "McLean", "MacKenzie", "McKay", "Sinclair", "Harris", "Lewis",
    "King", "Wright", "Mitchell", "Roberts", "Baker", "Hall", "Allen", "Bell", "Cook", "Gill",
    "Sandhu", "Dhillon", "Grewal", "Sidhu", "Bird", "Cardinal", "Sutherland", "Thomas",
    "Joseph", "Daniels", "Linklater", "Favel", "Johnston", "Moore", "Hill", "Green", "Adams",
    "Nelson", "Carter", "Evans", "Turner", "Parker", "Collins", "Edwards", "Murphy", "Cooper",
    "Ward", "Rossi", "Silva", "Santos", "Kowalski", "Nowak", "Petrov", "Ahmed", "Ali",
    "Hussein", "Mohamed", "Khan", "Osman", "Haile", "Mensah", "Okafor", "Martin", "Leblanc",
)
_GIVEN_FR_M: tuple[str, ...] = (
    "Jean", "Marc", "Luc", "François", "Jérôme", "Sébastien", "Éric", "Stéphane", "Mathieu",
    "Maxime", "Olivier", "Alexandre", "Guillaume", "Jean-François", "Pierre-Luc", "Gabriel",
    "Félix", "Louis", "Samuel", "William", "Étienne", "Frédéric", "Benoît", "Denis", "Réjean",
    "Gaétan", "Yves", "André", "Michel", "Sylvain", "Patrice", "Mario", "Dany", "Kevin",
    "Jonathan", "Jean-Philippe", "Marc-André", "Hugo", "Thomas", "Antoine", "Émile", "Raphaël",
    "Noël", "Rémi", "Joël", "Jacques", "Pierre", "Claude",
)
_GIVEN_FR_F: tuple[str, ...] = (
    "Marie", "Hélène", "Zoé", "Geneviève", "Mélanie", "Isabelle", "Julie", "Marie-Ève",
    "Chloé", "Émilie", "Andrée", "Josée", "Nathalie", "Brigitte", "Amélie", "Noémie", "Sophie",
    "Véronique", "Caroline", "Audrey", "Catherine", "Mélissa", "Karine", "Stéphanie",
    "Valérie", "Annie", "Lucie", "Françoise", "Gisèle", "Léa", "Océane", "Rosalie", "Ève",
    "Céline", "Solange",
)
_GIVEN_EN_M: tuple[str, ...] = (
    "James", "John", "Robert", "Michael", "David", "Daniel", "Matthew", "Ryan", "Tyler",
    "Kevin", "Jason", "Brandon", "Justin", "Cody", "Dustin", "Christopher", "Joshua", "Andrew",
    "Brian", "Steven", "Mark", "Paul", "Richard", "Thomas", "William", "Joseph", "Jordan",
    "Travis", "Shane", "Derek", "Kyle", "Curtis", "Trevor", "Darren", "Wayne", "Gurpreet",
    "Harjit", "Rajinder", "Wei", "Minh", "Ahmed", "Omar", "Mohamed", "Ali", "Hassan", "Carlos",
    "Luis", "Dmitri", "Seán", "Liam", "Ethan", "Noah", "Logan", "Dale", "Colton",
)
_GIVEN_EN_F: tuple[str, ...] = (
    "Sarah", "Jessica", "Ashley", "Amanda", "Jennifer", "Melissa", "Stephanie", "Nicole",
    "Crystal", "Heather", "Amber", "Brittany", "Samantha", "Kayla", "Tiffany", "Rebecca",
    "Laura", "Karen", "Lisa", "Michelle", "Angela", "Kimberly", "Shannon", "Tanya", "Cheyenne",
    "Destiny", "Harpreet", "Jasmine", "Mei", "Linh", "Fatima", "Amina", "Maria", "Ana", "Renée",
    "Chloë", "Dawn",
)
_GIVEN_FR = _GIVEN_FR_M + _GIVEN_FR_F
_GIVEN_EN = _GIVEN_EN_M + _GIVEN_EN_F
_NICKNAMES: tuple[str, ...] = (
    "Bobby", "Mikey", "Ti-Jean", "Junior", "Tony", "Danny", "Jay", "Red", "Max", "J.F.",
    "Smitty", "Kid", "Ti-Loup", "Frankie", "Sly", "Bones", "Cat", "Lulu", "Dee", "Roxy",
)

_FRENCH_SHARE = {"QC": 0.85, "NB": 0.35, "ON": 0.14}

#: Federal institutions: name, province, security level, for women.
_FED_INSTITUTIONS: tuple[tuple[str, str, str, bool], ...] = (
    ("Kent Institution", "BC", "MAXIMUM", False),
    ("Mountain Institution", "BC", "MEDIUM", False),
    ("Matsqui Institution", "BC", "MEDIUM", False),
    ("Mission Institution", "BC", "MULTI", False),
    ("William Head Institution", "BC", "MINIMUM", False),
    ("Pacific Institution", "BC", "MULTI", False),
    ("Kwìkwèxwelhp Healing Village", "BC", "MINIMUM", False),
    ("Fraser Valley Institution for Women", "BC", "MULTI", True),
    ("Edmonton Institution", "AB", "MAXIMUM", False),
    ("Drumheller Institution", "AB", "MEDIUM", False),
    ("Bowden Institution", "AB", "MEDIUM", False),
    ("Grierson Centre", "AB", "MINIMUM", False),
    ("Pê Sâkâstêw Centre", "AB", "MINIMUM", False),
    ("Edmonton Institution for Women", "AB", "MULTI", True),
    ("Saskatchewan Penitentiary", "SK", "MULTI", False),
    ("Regional Psychiatric Centre", "SK", "MULTI", False),
    ("Willow Cree Healing Lodge", "SK", "MINIMUM", False),
    ("Okimaw Ohci Healing Lodge", "SK", "MINIMUM", True),
    ("Stony Mountain Institution", "MB", "MULTI", False),
    ("Millhaven Institution", "ON", "MAXIMUM", False),
    ("Collins Bay Institution", "ON", "MULTI", False),
    ("Joyceville Institution", "ON", "MEDIUM", False),
    ("Bath Institution", "ON", "MEDIUM", False),
    ("Warkworth Institution", "ON", "MEDIUM", False),
    ("Beaver Creek Institution", "ON", "MINIMUM", False),
    ("Grand Valley Institution for Women", "ON", "MULTI", True),
    ("Donnacona Institution", "QC", "MAXIMUM", False),
    ("Port-Cartier Institution", "QC", "MAXIMUM", False),
    ("Archambault Institution", "QC", "MEDIUM", False),
    ("Cowansville Institution", "QC", "MEDIUM", False),
    ("La Macaza Institution", "QC", "MEDIUM", False),
    ("Drummond Institution", "QC", "MEDIUM", False),
    ("Federal Training Centre", "QC", "MULTI", False),
    ("Joliette Institution for Women", "QC", "MULTI", True),
    ("Atlantic Institution", "NB", "MAXIMUM", False),
    ("Dorchester Penitentiary", "NB", "MULTI", False),
    ("Springhill Institution", "NS", "MEDIUM", False),
    ("Nova Institution for Women", "NS", "MULTI", True),
)
_CSC_REGION = {
    "BC": "PAC", "YT": "PAC", "AB": "PRA", "SK": "PRA", "MB": "PRA", "NT": "PRA", "NU": "PRA",
    "ON": "ONT", "QC": "QUE", "NS": "ATL", "NB": "ATL", "NL": "ATL", "PE": "ATL",
}
_REGION_INSTITUTIONS: dict[tuple[str, bool], tuple[tuple[str, str, str, bool], ...]] = {
    (region, women): tuple(
        inst for inst in _FED_INSTITUTIONS if _CSC_REGION[inst[1]] == region and inst[3] == women
    )
    for region in set(_CSC_REGION.values())
    for women in (False, True)
}
_PERSON_LEVEL = _Pick([("MINIMUM", 33.0), ("MEDIUM", 45.0), ("MAXIMUM", 15.0), ("MULTI", 7.0)])

#: Provincial and territorial facilities: (for men, for women).
_PROV_FACILITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "BC": (("North Fraser Pretrial Centre", "Surrey Pretrial Services Centre",
            "Fraser Regional Correctional Centre", "Ford Mountain Correctional Centre",
            "Okanagan Correctional Centre", "Prince George Regional Correctional Centre",
            "Nanaimo Correctional Centre", "Kamloops Regional Correctional Centre",
            "Vancouver Island Regional Correctional Centre"),
           ("Alouette Correctional Centre for Women",)),
    "ON": (("Toronto South Detention Centre", "Maplehurst Correctional Complex",
            "Central East Correctional Centre", "Central North Correctional Centre",
            "Ottawa-Carleton Detention Centre", "Elgin-Middlesex Detention Centre",
            "Thunder Bay Correctional Centre", "Quinte Detention Centre",
            "Hamilton-Wentworth Detention Centre", "South West Detention Centre"),
           ("Vanier Centre for Women", "Ottawa-Carleton Detention Centre")),
    "QC": (("Établissement de détention de Montréal", "Établissement de détention de Québec",
            "Établissement de détention de Rivière-des-Prairies",
            "Établissement de détention de Sherbrooke",
            "Établissement de détention de Trois-Rivières", "Établissement de détention de Hull",
            "Établissement de détention de Saint-Jérôme",
            "Établissement de détention de Sept-Îles", "Établissement de détention d'Amos",
            "Établissement de détention de Roberval"),
           ("Établissement de détention Leclerc de Laval",)),
    "SK": (("Regina Correctional Centre", "Saskatoon Correctional Centre",
            "Prince Albert Correctional Centre"),
           ("Pine Grove Correctional Centre",)),
    "YT": (("Whitehorse Correctional Centre",), ("Whitehorse Correctional Centre",)),
}

_COURTS: dict[str, tuple[str, str]] = {  # (provincial court, superior court)
    "BC": ("Provincial Court of British Columbia", "Supreme Court of British Columbia"),
    "ON": ("Ontario Court of Justice", "Ontario Superior Court of Justice"),
    "QC": ("Cour du Québec", "Cour supérieure du Québec"),
    "SK": ("Provincial Court of Saskatchewan", "Court of King's Bench for Saskatchewan"),
    "YT": ("Territorial Court of Yukon", "Supreme Court of Yukon"),
    "AB": ("Alberta Court of Justice", "Court of King's Bench of Alberta"),
    "MB": ("Provincial Court of Manitoba", "Court of King's Bench of Manitoba"),
    "NS": ("Provincial Court of Nova Scotia", "Supreme Court of Nova Scotia"),
    "NB": ("Provincial Court of New Brunswick", "Court of King's Bench of New Brunswick"),
    "NL": ("Provincial Court of Newfoundland and Labrador",
           "Supreme Court of Newfoundland and Labrador"),
    "PE": ("Provincial Court of Prince Edward Island", "Supreme Court of Prince Edward Island"),
    "NT": ("Territorial Court of the Northwest Territories",
           "Supreme Court of the Northwest Territories"),
    "NU": ("Nunavut Court of Justice", "Nunavut Court of Justice"),
}

# (code, English description, French description, kind)
_Offence = tuple[str, str, str, str]
_OFFENCES: dict[str, _Offence] = {o[0]: o for o in (
    ("CC 235", "First or second degree murder", "Meurtre au premier ou au deuxième degré",
     "violent"),
    ("CC 236", "Manslaughter", "Homicide involontaire coupable", "violent"),
    ("CC 239", "Attempted murder", "Tentative de meurtre", "violent"),
    ("CC 266", "Assault", "Voies de fait", "violent"),
    ("CC 267", "Assault with a weapon or causing bodily harm",
     "Agression armée ou infliction de lésions corporelles", "violent"),
    ("CC 268", "Aggravated assault", "Voies de fait graves", "violent"),
    ("CC 271", "Sexual assault", "Agression sexuelle", "sexual"),
    ("CC 151", "Sexual interference", "Contacts sexuels", "sexual"),
    ("CC 163.1", "Child pornography", "Pornographie juvénile", "sexual"),
    ("CC 344", "Robbery", "Vol qualifié", "violent"),
    ("CC 348", "Break and enter", "Introduction par effraction", "property"),
    ("CC 334", "Theft", "Vol", "property"),
    ("CC 380", "Fraud", "Fraude", "property"),
    ("CC 355", "Possession of property obtained by crime",
     "Possession de biens criminellement obtenus", "property"),
    ("CC 320.14", "Operation while impaired", "Conduite avec capacités affaiblies", "other"),
    ("CC 145", "Failure to comply with a release order",
     "Défaut de se conformer à une ordonnance de mise en liberté", "other"),
    ("CC 733.1", "Failure to comply with a probation order",
     "Défaut de se conformer à une ordonnance de probation", "other"),
    ("CC 264.1", "Uttering threats", "Proférer des menaces", "violent"),
    ("CC 264", "Criminal harassment", "Harcèlement criminel", "violent"),
    ("CC 430", "Mischief", "Méfait", "property"),
    ("CC 95", "Possession of a prohibited or restricted firearm",
     "Possession d'une arme à feu prohibée ou à autorisation restreinte", "violent"),
    ("CC 279", "Kidnapping", "Enlèvement", "violent"),
    ("CDSA 5(2)", "Possession for the purpose of trafficking", "Possession en vue du trafic",
     "drug"),
    ("CDSA 5(1)", "Trafficking in a controlled substance", "Trafic de substances", "drug"),
    ("CDSA 6(1)", "Importing a controlled substance", "Importation de substances", "drug"),
)}
_FED_OFFENCE = _Pick([
    ("CC 344", 14.0), ("CC 267", 8.0), ("CC 268", 5.0), ("CC 271", 10.0), ("CC 151", 4.0),
    ("CC 163.1", 3.0), ("CDSA 5(2)", 9.0), ("CDSA 5(1)", 6.0), ("CDSA 6(1)", 4.0),
    ("CC 236", 3.0), ("CC 239", 2.0), ("CC 348", 6.0), ("CC 95", 6.0), ("CC 380", 4.0),
    ("CC 279", 1.0), ("CC 264", 2.0), ("CC 264.1", 2.0), ("CC 266", 3.0),
])
_PROV_OFFENCE = _Pick([
    ("CC 266", 15.0), ("CC 334", 14.0), ("CC 145", 14.0), ("CC 733.1", 10.0),
    ("CC 320.14", 10.0), ("CC 430", 7.0), ("CC 348", 6.0), ("CC 264.1", 6.0), ("CC 355", 5.0),
    ("CDSA 5(2)", 4.0), ("CC 380", 4.0), ("CC 271", 2.0), ("CC 267", 4.0), ("CC 264", 2.0),
    ("CC 344", 2.0), ("CC 95", 1.0),
])

_PROV_TYPE_INACTIVE = _Pick([
    ("CUSTODY", 40.0), ("PROBATION", 33.0), ("CONDITIONAL", 9.0), ("INTERMITTENT", 5.0),
    ("FINE", 13.0),
])
_PROV_TYPE_ACTIVE = {
    "IN_CUSTODY": _Pick([("CUSTODY", 90.0), ("INTERMITTENT", 10.0)]),
    "SUPERVISED": _Pick([("PROBATION", 65.0), ("CONDITIONAL", 20.0), ("CUSTODY", 15.0)]),
    "UAL": _Pick([("CUSTODY", 50.0), ("CONDITIONAL", 25.0), ("PROBATION", 25.0)]),
}
_PROV_STATUS = _Pick([
    ("IN_CUSTODY", 7.5), ("SUPERVISED", 22.0), ("UAL", 0.6), ("WARRANT_EXPIRED", 15.0),
    ("ARCHIVED", 54.9),
])
_INACTIVE_STATUS = _Pick([("ARCHIVED", 65.0), ("WARRANT_EXPIRED", 35.0)])
_FEDERAL_TERMS = _Pick([((730, 1460), 45.0), ((1461, 3650), 40.0), ((3651, 7300), 15.0)])
_PROVINCIAL_TERMS = {"INTERMITTENT": (14, 90), "CONDITIONAL": (60, 729), "PROBATION": (180, 1095)}
_FED_RELEASE = _Pick([
    ("DAY_PAROLE", 20.0), ("FULL_PAROLE", 25.0), ("STATUTORY_RELEASE", 50.0),
    ("LONG_TERM_SUPERVISION", 5.0),
])

_CONDITIONS = {
    "en": (
        "Abstain from alcohol", "Abstain from drugs except as prescribed",
        "No contact with the victim(s) or their family",
        "Reside at a community residential facility",
        "Curfew 22:00 to 06:00", "Do not leave the province without written permission",
        "Follow psychological counselling", "Not to possess weapons",
        "Avoid certain persons (criminal associates)",
        "Not to be in the presence of children under 16 unless supervised",
        "Report all intimate relationships", "Attend substance abuse treatment",
    ),
    "fr": (
        "S'abstenir de consommer de l'alcool",
        "S'abstenir de consommer des drogues sauf sur ordonnance",
        "Aucun contact avec la victime ou sa famille",
        "Résider dans un centre résidentiel communautaire", "Couvre-feu de 22 h à 6 h",
        "Ne pas quitter la province sans autorisation écrite", "Suivre une thérapie psychologique",
        "Ne pas posséder d'armes", "Éviter certaines personnes (fréquentations criminelles)",
        "Ne pas se trouver en présence d'enfants de moins de 16 ans sans supervision",
        "Déclarer toute relation intime", "Participer à un programme de traitement des dépendances",
    ),
}

_INCIDENT_TYPE = _Pick([
    ("ASSAULT", 28.0), ("CONTRABAND", 30.0), ("ESCAPE_ATTEMPT", 3.0), ("THREAT", 18.0),
    ("DAMAGE", 12.0), ("SELF_HARM", 9.0),
])
_INCIDENT_TEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "ASSAULT": ("Struck another inmate in the common area; separated by staff.",
                    "Physical altercation with a cellmate; minor injuries.",
                    "Assaulted an officer during a cell search."),
        "CONTRABAND": ("Unauthorized substance found during a routine cell search.",
                       "Cell phone found hidden in the living unit.",
                       "Homemade alcohol seized from the range."),
        "ESCAPE_ATTEMPT": ("Found in an unauthorized area near the perimeter fence.",
                           "Attempted to leave the escort vehicle during a transfer."),
        "THREAT": ("Uttered threats toward staff during the count.",
                   "Threatening letter to another inmate intercepted."),
        "DAMAGE": ("Damaged cell fixtures.", "Flooded the range by blocking the toilet."),
        "SELF_HARM": ("Self-injury; health care notified and follow-up arranged.",
                      "Placed on observation after a self-harm incident."),
    },
    "fr": {
        "ASSAULT": ("A frappé un autre détenu dans l'aire commune; séparés par le personnel.",
                    "Altercation physique avec un codétenu; blessures mineures.",
                    "A agressé un agent lors d'une fouille de cellule."),
        "CONTRABAND": ("Substance non autorisée trouvée lors d'une fouille de routine.",
                       "Téléphone cellulaire caché dans l'unité de vie.",
                       "Alcool artisanal saisi dans le secteur."),
        "ESCAPE_ATTEMPT": ("Trouvé dans une zone interdite près de la clôture d'enceinte.",
                           "A tenté de quitter le véhicule d'escorte lors d'un transfert."),
        "THREAT": ("A proféré des menaces envers le personnel pendant le dénombrement.",
                   "Lettre de menaces à un autre détenu interceptée."),
        "DAMAGE": ("A endommagé le mobilier de sa cellule.",
                   "A inondé le secteur en bouchant la toilette."),
        "SELF_HARM": ("Automutilation; services de santé avisés, suivi prévu.",
                      "Placé sous observation après un geste d'automutilation."),
    },
}
_ALERT_TYPE = _Pick([
    ("HIGH_RISK", 20.0), ("VIOLENCE", 30.0), ("SEX_OFFENDER", 8.0), ("ESCAPE_RISK", 12.0),
    ("NO_TRAVEL", 18.0), ("IMMIGRATION_HOLD", 12.0),
])
_ALERT_TEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "HIGH_RISK": ("Flagged under the high-risk offender protocol.",
                      "Dangerous offender assessment on file."),
        "SEX_OFFENDER": ("Subject to sex offender registration (SOIRA).",
                         "Registered; annual reporting required."),
        "VIOLENCE": ("History of violence toward staff.",
                     "Violent offence history; approach with caution."),
        "ESCAPE_RISK": ("Prior escape attempt; escort with restraints.",
                        "Unlawfully at large in the past; elevated escape risk."),
        "NO_TRAVEL": ("Court order prohibits leaving Canada.",
                      "Passport surrendered as a release condition."),
        "IMMIGRATION_HOLD": ("CBSA detainer on file; notify before release.",
                             "Subject to a removal order."),
    },
    "fr": {
        "HIGH_RISK": ("Signalé en vertu du protocole des délinquants à risque élevé.",
                      "Évaluation de délinquant dangereux au dossier."),
        "SEX_OFFENDER": ("Assujetti à l'enregistrement des délinquants sexuels (LERDS).",
                         "Enregistré; déclaration annuelle obligatoire."),
        "VIOLENCE": ("Antécédents de violence envers le personnel.",
                     "Antécédents d'infractions violentes; prudence."),
        "ESCAPE_RISK": ("Tentative d'évasion antérieure; escorte avec contraintes.",
                        "Déjà en liberté illégale; risque d'évasion élevé."),
        "NO_TRAVEL": ("Ordonnance interdisant de quitter le Canada.",
                      "Passeport remis comme condition de mise en liberté."),
        "IMMIGRATION_HOLD": ("Mandat de l'ASFC au dossier; aviser avant la libération.",
                             "Visé par une mesure de renvoi."),
    },
}
_HEALTH_NOTES: tuple[str, ...] = (
    "Intake health assessment completed.", "Annual physical completed.",
    "Dental appointment scheduled.", "Medication reviewed by the institutional physician.",
    "Mental health follow-up requested.", "Vaccination record updated.",
    "Referred to optometry.", "Chronic condition monitoring; no change.",
)


# --------------------------------------------------------------------------
# Per-system profiles


@dataclass(frozen=True)
class _Profile:
    size: int  # files at scale 1 (provincial systems; OMS is sized by its statuses)
    fps_missing: float  # share of files without an FPS number
    name_variant: float  # share of files spelling the name differently
    id_format: str  # str.format with n (a unique number) and y (a year)
    id_digits: int
    photo_format: str  # str.format with id
    parole_board: bool = False  # the province grants its own paroles
    language: str = "en"


_OMS_STATUS_COUNTS = (
    ("IN_CUSTODY", 13_000), ("SUPERVISED", 9_000), ("UAL", 350),
    ("WARRANT_EXPIRED", 22_000), ("ARCHIVED", 103_000),
)
_FEDERAL_PROFILE = _Profile(0, 0.0, 0.0, "{n:09d}", 8, "OMS/PHOTO/{id}.jpg")
_PROFILES: dict[str, _Profile] = {
    "BC": _Profile(70_000, 0.18, 0.03, "CS{n:08d}", 7, "cornet-mugshot-{id}.png"),
    "ON": _Profile(100_000, 0.16, 0.03, "{n:08d}", 8, "OTIS/IMG/{id}.jpg", parole_board=True),
    "QC": _Profile(80_000, 0.22, 0.05, "{y}-{n:06d}", 6, "photos/dacor/{id}.jpg",
                   parole_board=True, language="fr"),
    "SK": _Profile(30_000, 0.24, 0.03, "SK-{n:07d}", 7, "sk/{id}.jpg"),
    "YT": _Profile(3_000, 0.20, 0.03, "Y{n:05d}", 5, "yt/{id}.jpg"),
}


def _profile(source: Source) -> _Profile:
    if _is_federal(source):
        return _FEDERAL_PROFILE
    default = _Profile(10_000, 0.2, 0.03, source.code.replace("-", "") + "{n:07d}", 7,
                       "photo/{id}.jpg", language="fr" if source.jurisdiction == "QC" else "en")
    return _PROFILES.get(source.jurisdiction, default)


def _is_federal(source: Source) -> bool:
    return source.jurisdiction.startswith("CA")


# --------------------------------------------------------------------------
# People


@dataclass(slots=True)
class _Person:
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
        pool = _GIVEN_FR_F if gender == "F" else _GIVEN_FR_M
    else:
        pool = _GIVEN_EN_F if gender == "F" else _GIVEN_EN_M
    first = rng.choice(pool)
    if rng.random() < 0.35:
        second = rng.choice(pool)
        if second != first:
            return f"{first} {second}"
    return first


def _make_person(rng: random.Random, home: str, fps: str) -> _Person:
    r = rng.random
    french = r() < _FRENCH_SHARE.get(home, 0.07)
    x = r()
    gender = "M" if x < 0.875 else ("F" if x < 0.996 else "X")
    pool = _SURNAMES_FR if french else _SURNAMES_EN
    surname = rng.choice(pool)
    if r() < 0.03:
        other = rng.choice(_SURNAMES_FR if r() < 0.5 else _SURNAMES_EN)
        if other != surname:
            surname = f"{surname}-{other}"
    given = _given_names(rng, gender, french)
    birth = int(rng.triangular(_BIRTH_MIN, _BIRTH_MAX, _BIRTH_MODE))
    foreign = r() < 0.09
    if foreign:
        place = rng.choice(_FOREIGN_BIRTHPLACES)
    else:
        place_jur = home if r() < 0.85 else rng.choice(_JURISDICTIONS)
        city = _CITY_PICK.get(place_jur)
        place = f"{city(rng)}, {place_jur}" if city is not None else place_jur
    return _Person(fps, surname, given, birth, place, gender, home, foreign)


def _name_variant(rng: random.Random, surname: str, given: str | None) -> tuple[str, str | None]:
    x = rng.random()
    if x < 0.5:  # entered in capitals on an old terminal, accents lost
        return _strip_accents(surname).upper(), given and _strip_accents(given).upper()
    if x < 0.8:  # accents dropped
        return _strip_accents(surname), given and _strip_accents(given)
    return surname.upper(), given and given.upper()


# --------------------------------------------------------------------------
# One source system's files


@dataclass(slots=True)
class _History:
    sentences: list[tuple[Any, ...]]  # offence_code .. sentence_type
    start: int | None  # start of the current (or last) sentence
    length: int | None
    wed: int | None  # the file's warrant expiry date
    first: int | None  # earliest sentence date
    custody: tuple[int, int] | None  # a period spent in custody
    sexual: bool
    violent: bool


class _SourceBuilder:
    def __init__(self, source: Source, rng: random.Random, n_files: int) -> None:
        self.source = source
        self.rng = rng
        self.jur = source.jurisdiction
        self.federal = _is_federal(source)
        self.profile = _profile(source)
        self.lang = self.profile.language
        self.rows: dict[str, list[Row]] = {t: [] for t in source.tables}
        self.serves = frozenset(source.tables)
        digits = self.profile.id_digits
        numbers = rng.sample(range(10 ** (digits - 1), 10**digits), n_files)
        self._ids: Iterator[int] = iter(numbers)
        if self.federal:
            self.cities = _CITY_PICK["ON"]
            self.facilities: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        else:
            self.cities = _CITY_PICK.get(self.jur, _decreasing((self.jur,)))
            generic = (f"{self.jur} Correctional Centre",)
            self.facilities = _PROV_FACILITIES.get(self.jur, (generic, generic))

    # -- identity ---------------------------------------------------------

    def _next_id(self, opened: int | None = None) -> str:
        """The system's own file number (some carry the year the file was opened)."""
        year = dt.date.fromordinal(opened).year if opened is not None else REFERENCE_DATE.year
        return self.profile.id_format.format(n=next(self._ids), y=year)

    def _address(self, jur: str) -> str:
        rng = self.rng
        city = _CITY_PICK[jur](rng) if jur in _CITY_PICK else jur
        letters = _POSTAL_LETTERS.get(jur, "K")
        postal = (f"{rng.choice(letters)}{rng.randrange(10)}{rng.choice(_POSTAL_ALPHA)} "
                  f"{rng.randrange(10)}{rng.choice(_POSTAL_ALPHA)}{rng.randrange(10)}")
        number = _between(rng, 1, 9999)
        if jur == "QC":
            return f"{number}, {rng.choice(_STREETS_FR)}, {city} QC {postal}"
        return f"{number} {rng.choice(_STREETS_EN)}, {city} {jur} {postal}"

    def _phone(self, jur: str | None) -> str:
        area = self.rng.choice(_AREA_CODES.get(jur or self.jur, ("613",)))
        return f"{area}-555-01{self.rng.randrange(100):02d}"

    def _officer(self) -> str:
        rng = self.rng
        french = self.lang == "fr" or rng.random() < 0.1
        surname = rng.choice(_SURNAMES_FR if french else _SURNAMES_EN)
        given = rng.choice(_GIVEN_FR if french else _GIVEN_EN)
        return f"{given[0]}. {surname}"

    def _conditions(self) -> str:
        pool = _CONDITIONS[self.lang]
        return "; ".join(self.rng.sample(pool, _between(self.rng, 1, 3)))

    # -- sentences ----------------------------------------------------------

    def _length(self, kind: str) -> int | None:
        """Days imposed: two years or more federally, less provincially."""
        rng = self.rng
        if kind == "FINE":
            return None
        if self.federal:
            lo, hi = _FEDERAL_TERMS(rng)
        elif kind == "CUSTODY":  # most provincial custody terms are short
            return min(729, 1 + int(-math.log(1.0 - rng.random()) * 90))
        else:
            lo, hi = _PROVINCIAL_TERMS[kind]
        return _between(rng, lo, hi)

    def _sentence(
        self, code: str, court: str, sdate: int, start: int, length: int | None, kind: str
    ) -> tuple[Any, ...]:
        offence = _OFFENCES[code]
        desc = offence[2] if self.lang == "fr" else offence[1]
        wed = None if length is None else start + length
        return (code, desc, court, sdate, start, length, wed, kind)

    def _court(self, jur: str) -> str:
        courts = _COURTS.get(jur, (f"{jur} Provincial Court", f"{jur} Superior Court"))
        superior = self.federal or self.rng.random() < 0.05
        city = _CITY_PICK[jur](self.rng) if jur in _CITY_PICK else jur
        return f"{courts[1] if superior else courts[0]}, {city}"

    def _current(self, status: str, adult: int) -> tuple[str, int, int | None, bool]:
        """The current (active file) or last (closed file) sentence:
        (sentence type, start, length in days, life sentence)."""
        rng = self.rng
        r = rng.random
        if status not in _ACTIVE:
            if status == "WARRANT_EXPIRED":
                lo, hi = max(adult + 60, _REF - 730), _REF - 1
            else:
                lo, hi = adult + 60, _REF - 730
                if lo > hi:
                    hi = _REF - 1
            end = _between(rng, lo, hi)
            kind = "CUSTODY" if self.federal else _PROV_TYPE_INACTIVE(rng)
            length = self._length(kind)
            if length is None:
                return kind, end, None, False
            start = max(adult, end - length)
            return kind, start, max(1, end - start), False
        life = self.federal and r() < 0.03
        kind = "CUSTODY" if self.federal else _PROV_TYPE_ACTIVE[status](rng)
        length = None if life else self._length(kind)
        if status == "IN_CUSTODY":
            served = 0.03 + 0.57 * r()
        elif status == "SUPERVISED" and kind == "CUSTODY":  # released part-way through
            served = 0.34 + 0.61 * r()
        else:
            served = 0.02 + 0.93 * r()
        if length is None:
            start = _REF - _between(rng, 365, 9000)
        else:
            start = _REF - max(7, int(length * served))
        if start < adult:
            start = _between(rng, adult, _REF - 30)
        if length is not None and start + length <= _REF:
            length = _REF - start + _between(rng, 30, 900)
        return kind, start, length, life

    def _history(self, person: _Person, status: str) -> _History:
        rng = self.rng
        r = rng.random
        birth = person.birth if person.birth is not None else _BIRTH_MODE
        adult = max(birth + _ADULT_DAYS, _D1990 + 31)
        if not self.federal and status not in _ACTIVE and r() < 0.03:
            # a file opened on remand, never sentenced
            end = _between(rng, adult + 60, _REF - 1)
            return _History([], None, None, None, None, (end - 20, end), False, False)
        court_jur = person.home if self.federal else self.jur
        pick_offence = _FED_OFFENCE if self.federal else _PROV_OFFENCE
        kind, start, length, life = self._current(status, adult)
        sdate = start if r() < 0.7 else start - _between(rng, 1, 30)
        code = "CC 235" if life else pick_offence(rng)
        court = self._court(court_jur)
        rows = [self._sentence(code, court, sdate, start, length, kind)]
        if r() < (0.4 if self.federal else 0.2):  # more counts on the same warrant
            others = dict.fromkeys(pick_offence(rng) for _ in range(_between(rng, 1, 2)))
            for other in others:
                if other == code:
                    continue
                concurrent = None if length is None else max(1, int(length * (0.3 + 0.7 * r())))
                rows.append(self._sentence(other, court, sdate, start, concurrent, kind))
        bound = sdate - 60
        if self.federal:
            n_prior = 0 if r() < 0.65 else (1 if r() < 0.7 else 2)
        else:
            n_prior = 0 if r() < 0.45 else _between(rng, 1, 3)
        for _ in range(min(n_prior, 4 - len(rows))):
            if bound - adult < 120:
                break
            end_p = _between(rng, adult + 60, bound)
            kind_p = "CUSTODY" if self.federal else _PROV_TYPE_INACTIVE(rng)
            length_p = self._length(kind_p)
            start_p = end_p if length_p is None else max(adult, end_p - length_p)
            if length_p is not None:
                length_p = max(1, end_p - start_p)
            rows.append(self._sentence(pick_offence(rng), self._court(court_jur), start_p,
                                       start_p, length_p, kind_p))
            bound = start_p - 60
        weds = [row[6] for row in rows if row[6] is not None]
        kinds = {_OFFENCES[row[0]][3] for row in rows}
        custody = next(
            ((row[4], min(_REF - 1, row[6] if row[6] is not None else _REF - 1))
             for row in rows if row[7] in ("CUSTODY", "INTERMITTENT")),
            None,
        )
        return _History(
            rows, start, length, max(weds) if weds and not life else None,
            min(row[3] for row in rows), custody, "sexual" in kinds, "violent" in kinds,
        )

    # -- placement ------------------------------------------------------------

    def _institution(self, person: _Person) -> tuple[str, str, str]:
        """A facility, its jurisdiction and the person's security level."""
        rng = self.rng
        women = person.gender == "F"
        if self.federal:
            region = _CSC_REGION.get(person.home, "ONT")
            name, jur, level, _ = rng.choice(_REGION_INSTITUTIONS[(region, women)])
            if level == "MULTI":
                level = _PERSON_LEVEL(rng)
            return name, jur, level
        pool = self.facilities[1 if women else 0]
        level = _PERSON_LEVEL(rng)
        return rng.choice(pool), self.jur, level

    def _community_office(self, jur: str) -> str:
        rng = self.rng
        city = _CITY_PICK[jur](rng) if jur in _CITY_PICK else jur
        french = jur == "QC"
        if self.federal:
            x = rng.random()
            if x < 0.2:
                return (f"Centre correctionnel communautaire de {city}" if french
                        else f"{city} Community Correctional Centre")
            if x < 0.4:
                return (f"Centre résidentiel communautaire de {city}" if french
                        else f"{city} Community Residential Facility")
            return (f"Bureau de libération conditionnelle de {city}" if french
                    else f"{city} Parole Office")
        if french:
            return f"Bureau de probation de {city}"
        if self.jur == "ON":
            return f"{city} Probation and Parole Office"
        return f"{city} Community Corrections"

    def _placement(
        self, person: _Person, status: str, h: _History
    ) -> tuple[str | None, str | None, str | None, int | None]:
        """(assigned facility, supervising jurisdiction, security level,
        planned release date) of a file."""
        rng = self.rng
        if status == "IN_CUSTODY":
            facility, jur, level = self._institution(person)
            planned = None
            if h.start is not None and h.length is not None:  # none for a life sentence
                planned = h.start + (2 * h.length) // 3
                if planned <= _REF + 60:
                    planned = _REF + _between(rng, 60, 400)
                if h.wed is not None:
                    planned = min(planned, h.wed)
            return facility, jur, level, planned
        if status in _ACTIVE:
            if self.federal:
                jur = person.home if rng.random() < 0.85 else rng.choice(_JURISDICTIONS)
            else:
                jur = self.jur
            return self._community_office(jur), jur, None, None
        if rng.random() < 0.25:  # last known placement kept on a closed file
            jur = person.home if self.federal else self.jur
            return self._community_office(jur), jur, None, None
        return None, None, None, None

    # -- one file ---------------------------------------------------------------

    def add(self, person: _Person, status: str, *, exact: bool = False) -> None:
        rng = self.rng
        r = rng.random
        h = self._history(person, status)
        pid = self._next_id(h.first if h.first is not None else (h.custody or (None,))[0])
        fps: str | None = person.fps
        surname, given = person.surname, person.given
        if not exact and not self.federal:
            if r() < self.profile.fps_missing:
                fps = None
            if r() < self.profile.name_variant:
                surname, given = _name_variant(rng, surname, given)
        active = status in _ACTIVE
        facility, sup_jur, level, planned = self._placement(person, status, h)
        address = None
        if r() < (0.85 if status == "SUPERVISED" else 0.6 if active else 0.45):
            address = self._address(person.home if self.federal or r() < 0.2 else self.jur)
        photo = None
        if r() < (0.95 if active else 0.55):
            photo = self.profile.photo_format.format(id=pid)
        self.rows["offenders"].append((
            pid, fps, surname, given, person.birth, person.birth_place, person.gender, address,
            photo, status, sup_jur, facility, level, planned, h.wed,
        ))
        if "sentences" in self.serves:
            self.rows["sentences"].extend((pid, fps, *row) for row in h.sentences)
        self._children(pid, fps, person, status, h, facility, sup_jur, surname, given)

    def _children(self, pid: str, fps: str | None, person: _Person, status: str, h: _History,
                  facility: str | None, sup_jur: str | None, surname: str,
                  given: str | None) -> None:
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

    def _releases(self, pid: str, fps: str | None, status: str, h: _History,
                  sup_jur: str | None) -> None:
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
                rtype = "FULL_PAROLE" if length is None else _FED_RELEASE(rng)
                elig = {"DAY_PAROLE": start + term // 6, "FULL_PAROLE": start + term // 3,
                        "STATUTORY_RELEASE": start + 2 * term // 3}.get(rtype)
                rel = _between(rng, min(start + term // 6, _REF - 2), _REF - 1)
            elif kind == "CUSTODY":
                rtype = "FULL_PAROLE" if self.profile.parole_board else "TEMPORARY_ABSENCE"
                elig = start + term // 3 if self.profile.parole_board else None
                rel = _between(rng, min(start + term // 3, _REF - 2), _REF - 1)
            else:
                rtype, elig, rel = "PROBATION", None, start
            if r() < 0.12 and rel - start > 60:
                out.append((pid, fps, rtype, _between(rng, start, rel - 30), self._conditions(),
                            self._officer(), self._phone(sup_jur), "REVOKED", elig))
            out.append((pid, fps, rtype, rel, self._conditions(), self._officer(),
                        self._phone(sup_jur), state, elig))
        elif status == "IN_CUSTODY":
            if (self.federal and r() < 0.6) or (self.profile.parole_board and r() < 0.35):
                # Eligibility known, no release yet: no date, no status.
                day = r() < 0.5
                out.append((pid, fps, "DAY_PAROLE" if day else "FULL_PAROLE", None, None, None,
                            None, None, start + (term // 6 if day else term // 3)))
            if r() < 0.1:
                out.append((pid, fps, "TEMPORARY_ABSENCE", _between(rng, start, _REF - 1),
                            self._conditions() if r() < 0.5 else None, None, None, "COMPLETED",
                            None))
        elif h.custody is not None and r() < 0.8:
            lo, hi = h.custody
            rtype = ("STATUTORY_RELEASE" if r() < 0.6 else "FULL_PAROLE") if self.federal else (
                "TEMPORARY_ABSENCE" if r() < 0.3 else "PROBATION")
            rel = _between(rng, lo + (hi - lo) // 3, hi)
            if r() < 0.1:
                out.append((pid, fps, rtype, _between(rng, lo, rel), self._conditions(),
                            self._officer(), self._phone(sup_jur), "REVOKED", None))
            out.append((pid, fps, rtype, rel, self._conditions() if r() < 0.8 else None,
                        self._officer() if r() < 0.7 else None,
                        self._phone(sup_jur) if r() < 0.6 else None, "COMPLETED",
                        lo + (hi - lo) // 3 if rtype == "FULL_PAROLE" else None))
        elif not self.federal and any(s[7] == "PROBATION" for s in h.sentences) and r() < 0.7:
            probation = next(s for s in h.sentences if s[7] == "PROBATION")
            out.append((pid, fps, "PROBATION", probation[4], self._conditions(),
                        self._officer() if r() < 0.7 else None, None, "COMPLETED", None))

    def _incidents(self, pid: str, fps: str | None, person: _Person, h: _History,
                   facility: str | None) -> None:
        rng = self.rng
        if h.custody is None or rng.random() >= (0.3 if self.federal else 0.15):
            return
        lo, hi = h.custody
        if hi <= lo:
            return
        texts = _INCIDENT_TEXT[self.lang]
        out = self.rows["incidents"]
        for _ in range(_between(rng, 1, 3)):
            kind = _INCIDENT_TYPE(rng)
            where = facility if facility is not None and rng.random() < 0.7 else (
                self._institution(person)[0])
            out.append((pid, fps, _between(rng, lo, hi), kind, where, rng.choice(texts[kind])))

    def _alerts(self, pid: str, fps: str | None, person: _Person, status: str,
                h: _History) -> None:
        rng = self.rng
        r = rng.random
        kinds: list[str] = []
        if h.sexual and r() < 0.35:  # registration is ordered, not automatic
            kinds.append("SEX_OFFENDER")
        if h.violent and status in _ACTIVE and r() < (0.1 if self.federal else 0.04):
            kinds.append("HIGH_RISK")
        if person.foreign and r() < (0.2 if self.federal else 0.08):
            kinds.append("IMMIGRATION_HOLD")
        if r() < 0.04:
            kinds.append(_ALERT_TYPE(rng))
        if not kinds:
            return
        lo = h.first if h.first is not None else _D1990
        texts = _ALERT_TEXT[self.lang]
        out = self.rows["alerts"]
        for kind in dict.fromkeys(kinds):
            out.append((pid, fps, kind, _between(rng, lo, _REF - 1),
                        rng.choice(texts[kind]) if r() < 0.9 else None))

    def _aliases(self, pid: str, fps: str | None, surname: str, given: str | None) -> None:
        rng = self.rng
        out = self.rows["aliases"]
        for _ in range(1 if rng.random() < 0.75 else 2):
            x = rng.random()
            if x < 0.4:
                pool = _SURNAMES_FR if self.lang == "fr" else _SURNAMES_EN
                out.append((pid, fps, rng.choice(pool), given))
            elif x < 0.75:
                out.append((pid, fps, surname, rng.choice(_NICKNAMES)))
            elif x < 0.9 and given:
                out.append((pid, fps, given.split(" ")[0], surname))  # names swapped
            else:
                out.append((pid, fps, _strip_accents(surname).replace("ll", "l"), given))

    def _health(self, pid: str, fps: str | None, h: _History) -> None:
        rng = self.rng
        lo = h.start if h.start is not None else _REF - 3650
        out = self.rows["health_notes"]
        for _ in range(_between(rng, 1, 3)):
            out.append((pid, fps, _between(rng, lo, _REF - 1), rng.choice(_HEALTH_NOTES)))

    def add_minimal(self, person: _Person) -> None:
        """A file with only an id, a surname and a status, and one bare child row
        per child table: every nullable column holds a NULL somewhere."""
        pid = self._next_id()
        self.rows["offenders"].append(
            (pid, None, person.surname, None, None, None, None, None, None, "ARCHIVED",
             None, None, None, None, None))
        for table, rows in self.rows.items():
            if table != "offenders" and table in _COLUMNS:
                rows.append((pid,) + (None,) * (len(_COLUMNS[table]) - 1))


# --------------------------------------------------------------------------
# The whole federation


def _files_per_source(
    federation: Federation, seed: int, scale: float
) -> dict[str, list[tuple[_Person, str, bool]]]:
    """Which people have a file in which system, and the file's status.

    The third item says the file is written exactly as the person is known
    (no missing FPS, no spelling variant): the fixed edge cases use it.
    """
    rng = random.Random(seed)  # noqa: S311 (synthetic data, not security)
    fps = _FpsNumbers(rng)
    federal_statuses: list[str] = []
    for status, count in _OMS_STATUS_COUNTS:
        federal_statuses += [status] * max(1, round(count * scale))
    rng.shuffle(federal_statuses)
    federal: list[_Person] = []
    for status in federal_statuses:
        person = _make_person(rng, _FEDERAL_HOME(rng), fps())
        person.fed_status = status
        federal.append(person)

    files: dict[str, list[tuple[_Person, str, bool]]] = {}
    local: dict[str, list[_Person]] = {}
    provinces = [s for s in federation.sources.values() if not _is_federal(s)]
    for source in federation.sources.values():
        if _is_federal(source):
            files[source.code] = [(p, p.fed_status or "ARCHIVED", False) for p in federal]
            continue
        files[source.code], local[source.code] = _provincial_files(
            source, federal, rng, fps, scale)
    # Some provincial offenders also have a closed file in another province.
    for source in provinces:
        others = [(s.code, float(_profile(s).size)) for s in provinces if s.code != source.code]
        if not others:
            break
        pick_other = _Pick(others)
        for person in local[source.code]:
            if rng.random() < 0.03:
                files[pick_other(rng)].append((person, _INACTIVE_STATUS(rng), False))

    for source in federation.sources.values():
        rng.shuffle(files[source.code])
    _edge_cases(federation, files, fps)
    return files


def _provincial_files(
    source: Source, federal: list[_Person], rng: random.Random, fps: _FpsNumbers, scale: float
) -> tuple[list[tuple[_Person, str, bool]], list[_Person]]:
    """A province's files: federal offenders from that province (or who
    moved through it), then people known only provincially."""
    jur = source.jurisdiction
    size = _profile(source).size
    moved = 0.02 * size / 100_000  # bigger systems see more people from elsewhere
    entries: list[tuple[_Person, str, bool]] = []
    for person in federal:
        if person.home == jur or rng.random() < moved:
            if person.fed_status in _ACTIVE or person.home != jur:
                status = _INACTIVE_STATUS(rng)
            else:  # provincial offenders may have served federal sentences before
                status = _PROV_STATUS(rng)
            entries.append((person, status, False))
    target = max(10, round(size * scale))
    people = []
    for _ in range(max(0, target - len(entries))):
        home = jur if rng.random() < 0.95 else _FEDERAL_HOME(rng)
        people.append(_make_person(rng, home, fps()))
    statuses = [_PROV_STATUS(rng) for _ in people]
    # Every status occurs in every system, however small the scale.
    missing = [s for s in _PROV_STATUS.items if s not in statuses]
    slots = rng.sample(range(len(people)), min(len(missing), len(people)))
    for status, index in zip(missing, slots, strict=False):
        statuses[index] = status
    entries += [(p, s, False) for p, s in zip(people, statuses, strict=True)]
    return entries, people


def _edge_cases(federation: Federation, files: dict[str, list[tuple[_Person, str, bool]]],
                fps: _FpsNumbers) -> None:
    """Fixed edge cases in every system: an apostrophe (one person known to
    all systems), hyphens and accents, a leap-day birth date. (The bare file
    with NULLs is added by the builder.)"""
    obrien = _Person(fps(), "O'Brien", "Seán Patrick", dt.date(1971, 3, 17).toordinal(),
                     "St. John's, NL", "M", "NL", False)
    for source in federation.sources.values():
        entries = files[source.code]
        entries.append((obrien, "SUPERVISED" if _is_federal(source) else "ARCHIVED", True))
        home = "QC" if _is_federal(source) else source.jurisdiction
        hyphen = _Person(fps(), "Roy-Tremblay", "Marie-Ève", dt.date(1988, 2, 29).toordinal(),
                         "Trois-Rivières, QC", "F", home, False)
        entries.append((hyphen, "IN_CUSTODY", True))


def generate(
    federation: Federation, *, seed: int = 7, scale: float = 0.01
) -> dict[str, dict[str, pa.Table]]:
    """Synthetic data for every source, in the logical model.

    Returns source code -> logical table name -> an Arrow table with exactly
    the logical schema (``LogicalTable.arrow_schema()``: all logical columns,
    in logical order). Columns the source does not hold are all-null; tables
    the source does not serve are absent. The same seed and scale give the
    same tables.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    files = _files_per_source(federation, seed, scale)
    result: dict[str, dict[str, pa.Table]] = {}
    for source in federation.sources.values():
        entries = files[source.code]
        rng = random.Random(f"{seed}/{source.code}")  # noqa: S311 (synthetic data)
        builder = _SourceBuilder(source, rng, len(entries) + 1)
        for person, status, exact in entries:
            builder.add(person, status, exact=exact)
        builder.add_minimal(_Person("", "Ouellet", None, None, None, "X", source.jurisdiction,
                                    False))
        result[source.code] = {
            table: _to_arrow(builder.rows[table], table, federation.tables[table],
                             source.tables[table])
            for table in federation.tables
            if table in source.tables
        }
    return result


def _to_arrow(rows: list[Row], table: str, logical: LogicalTable,
              mapping: TableMapping) -> pa.Table:
    names = _COLUMNS.get(table, ())
    index = {name: i for i, name in enumerate(names)}
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    n = len(rows)
    arrays = []
    for name, logical_type in logical.columns.items():
        arrow_type = LOGICAL_TYPES[logical_type]
        if name not in mapping.columns or name not in index:
            arrays.append(pa.nulls(n, arrow_type))
            continue
        values = columns[index[name]]
        if logical_type == "DATE":
            days = [None if v is None else v - _EPOCH for v in values]
            arrays.append(pa.array(days, pa.int32()).cast(pa.date32()))
        else:
            arrays.append(pa.array(list(values), arrow_type))
    return pa.Table.from_arrays(arrays, schema=logical.arrow_schema())


# --------------------------------------------------------------------------
# Writing a source's physical database


_SQLITE_TYPES = {"VARCHAR": "TEXT", "DATE": "TEXT", "BIGINT": "INTEGER", "DOUBLE": "REAL",
                 "BOOLEAN": "INTEGER"}


def _quote(identifier: str) -> str:
    return f'"{identifier}"'


def _physical_values(column: pa.ChunkedArray, logical_type: str, held: ColumnMapping,
                     where: str) -> list[Any]:
    """One logical column converted to what the source system stores."""
    if held.codes:
        reverse = held.reverse_codes
        values = column.to_pylist()
        try:
            return [None if v is None else reverse[v] for v in values]
        except KeyError as exc:
            raise ConfigError(
                f"{where}: the mapping has no physical code for logical value {exc.args[0]!r}"
            ) from None
    if logical_type == "DATE":
        fmt = held.date_format
        cache: dict[int, str] = {}
        out: list[str | None] = []
        for day in column.cast(pa.int32()).to_pylist():
            if day is None:
                out.append(None)
                continue
            text = cache.get(day)
            if text is None:
                date = dt.date.fromordinal(day + _EPOCH)
                text = date.strftime(fmt) if fmt else date.isoformat()
                cache[day] = text
            out.append(text)
        return out
    if logical_type == "BOOLEAN":
        return [None if v is None else int(v) for v in column.to_pylist()]
    return list(column.to_pylist())


def _create_statements(source: Source, logical: LogicalTable,
                       mapping: TableMapping) -> tuple[list[str], list[str], list[str]]:
    """(CREATE TABLE, index statements, physical column names) for one table."""
    held = [c for c in logical.columns if c in mapping.columns]
    physical = [mapping.columns[c].physical for c in held]
    where = f"source {source.code}.{logical.name}"
    if len({p.upper() for p in physical}) != len(physical):
        raise ConfigError(f"{where}: two logical columns map to one physical column")
    table = mapping.physical_table
    person_id = mapping.columns.get("source_person_id")
    is_person_table = logical.name == "offenders"
    defs = []
    for logical_name, column in zip(held, physical, strict=True):
        sql_type = _SQLITE_TYPES[logical.columns[logical_name]]
        extra = " NOT NULL PRIMARY KEY" if is_person_table and logical_name == (
            "source_person_id") else ""
        defs.append(f"{_quote(column)} {sql_type}{extra}")
    create = f"CREATE TABLE {_quote(table)} (\n  " + ",\n  ".join(defs) + "\n)"
    indexes: list[str] = []

    def index(suffix: str, columns: list[ColumnMapping | None]) -> None:
        present = [c.physical for c in columns if c is not None]
        if present and len(present) == len(columns):
            indexes.append(
                f"CREATE INDEX {_quote(f'{table}_{suffix}_IX')} ON {_quote(table)} "
                f"({', '.join(_quote(c) for c in present)})")

    fps = mapping.columns.get(logical.person_key or "fps_number")
    index("FPS", [fps])
    for surname, given in (("surname", "given_names"), ("alias_surname", "alias_given_names")):
        if surname in mapping.columns:
            index("NAME", [mapping.columns[surname], mapping.columns.get(given)]
                  if given in mapping.columns else [mapping.columns[surname]])
    if person_id is not None and not is_person_table:
        index("PERSON", [person_id])
    return [create], indexes, physical


def write_sqlite(
    federation: Federation, source_code: str, tables: dict[str, pa.Table], path: Path
) -> dict[str, int]:
    """(Re)creates the source's SQLite database at path from logical tables.

    Creates each served table under its physical name with its physical
    columns (TEXT for strings, codes and dates; INTEGER for BIGINT) and the
    indexes the system would have (FPS number, surname and given names,
    person id of child tables); converts logical values back to the
    system's codes and date formats; loads each table in one transaction.
    An existing file is replaced atomically. Returns rows per logical table.
    """
    source = federation.source(source_code)
    path = Path(path)
    for table in tables:
        if table not in source.tables:
            raise ConfigError(f"source {source.code} does not serve table {table!r}")
    # SQLite creates the temporary file itself (usual permissions under the
    # umask); the random name keeps concurrent writers apart.
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
    counts: dict[str, int] = {}
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("BEGIN")
            for name, logical in federation.tables.items():
                if name not in source.tables:
                    continue
                mapping = source.tables[name]
                creates, indexes, physical = _create_statements(source, logical, mapping)
                for statement in creates:
                    conn.execute(statement)
                data = tables.get(name)
                if data is not None and data.num_rows:
                    held = [c for c in logical.columns if c in mapping.columns]
                    columns = [
                        _physical_values(data.column(c), logical.columns[c], mapping.columns[c],
                                         f"source {source.code}.{name}.{c}")
                        for c in held
                    ]
                    marks = ", ".join("?" * len(physical))
                    conn.executemany(
                        f"INSERT INTO {_quote(mapping.physical_table)} "
                        f"({', '.join(_quote(p) for p in physical)}) VALUES ({marks})",
                        zip(*columns, strict=True),
                    )
                for statement in indexes:
                    conn.execute(statement)
                counts[name] = 0 if data is None else data.num_rows
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
        finally:
            conn.close()
        for leftover in ("-journal", "-wal", "-shm"):  # never replay another file's log
            Path(f"{path}{leftover}").unlink(missing_ok=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


def write_federation_data(
    federation: Federation, workdir: Path, *, seed: int = 7, scale: float = 0.01
) -> dict[str, dict[str, int]]:
    """Generates the data and writes every sqlite-backed source's database
    at workdir / backend.path. Returns source -> logical table -> rows."""
    data = generate(federation, seed=seed, scale=scale)
    counts: dict[str, dict[str, int]] = {}
    for code, source in federation.sources.items():
        if source.backend.kind != "sqlite" or not source.backend.path:
            continue
        path = Path(workdir) / source.backend.path
        path.parent.mkdir(parents=True, exist_ok=True)
        counts[code] = write_sqlite(federation, code, data[code], path)
    return counts


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m adapters.datagen WORKDIR [--seed N] [--scale X]``."""
    import argparse
    import time

    from accord.federation import load_federation

    parser = argparse.ArgumentParser(description=_main.__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--federation", type=Path,
                        default=Path(__file__).resolve().parent.parent / "deploy/federation.yaml")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.01)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = write_federation_data(load_federation(args.federation), args.workdir,
                                   seed=args.seed, scale=args.scale)
    for code, tables in counts.items():
        print(code, " ".join(f"{t}={n}" for t, n in tables.items()))
    print(f"{time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())

