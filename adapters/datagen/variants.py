"""How another system writes the same person: the name and birth-date
variants of records entered by hand in different places and decades.

:func:`vary` gives a provincial file a realistic variant of the person's
name or birth date: a typing error, accents dropped, a hyphenated surname
written with a space or only one of its parts, a particle run in or
dropped ("D'Amours", "Damours", "Amours"), "St-" spelled out, given names
transposed or the middle one dropped, a birth date with day and month
swapped (a US-style entry). The person's FPS number stays the truth of
which records are one person (``logical.person_truth``), whether or not the
file carries it.

It draws from its own generator, seeded by the file: the data every other
column holds is the same with or without it.
"""

from __future__ import annotations

import datetime as dt
import string
from typing import TYPE_CHECKING

from .common import strip_accents

if TYPE_CHECKING:
    import random

#: Share of provincial files written with at least one variant.
VARIANT_SHARE = 0.3


def _typo(rng: random.Random, word: str) -> str:
    """One keying error: a letter dropped, doubled, replaced, or two swapped."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)  # the first letter is rarely wrong
    kind = rng.randrange(4)
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        letter = rng.choice(string.ascii_lowercase)
        return word[:i] + (letter.upper() if word[i].isupper() else letter) + word[i + 1 :]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def _surname(rng: random.Random, surname: str) -> str:
    if "-" in surname and rng.random() < 0.7:
        first, _, second = surname.partition("-")
        return rng.choice((f"{first} {second}", first, second, f"{first}{second.lower()}"))
    if surname.startswith("St-"):
        return "Saint-" + surname[3:]
    if surname.startswith("D'"):
        return rng.choice(("D" + surname[2:].lower(), surname[2:], "D " + surname[2:]))
    if surname.startswith("O'"):
        return "O" + surname[2:]
    return _typo(rng, surname)


def _given(rng: random.Random, given: str) -> str:
    names = given.split(" ")
    if len(names) > 1:
        x = rng.random()
        if x < 0.45:
            return " ".join(reversed(names))
        if x < 0.8:
            return names[0]
        return names[0] + " " + names[1][0] + "."
    if "-" in given and rng.random() < 0.5:
        return given.replace("-", " ")
    return _typo(rng, given)


def vary(
    rng: random.Random, surname: str, given: str | None, birth: int | None
) -> tuple[str, str | None, int | None]:
    """(surname, given names, birth ordinal) as this file writes them."""
    if rng.random() >= VARIANT_SHARE:
        return surname, given, birth
    for _ in range(1 + (rng.random() < 0.25)):  # a quarter of them twice
        x = rng.random()
        if x < 0.3:
            surname = _surname(rng, surname)
        elif x < 0.55 and given:
            given = _given(rng, given)
        elif x < 0.7:
            surname, given = strip_accents(surname), given and strip_accents(given)
        elif x < 0.85 and birth is not None:
            birth = _swap_day_month(birth)
        else:
            surname = _typo(rng, surname)
    return surname, given, birth


def _swap_day_month(birth: int) -> int:
    date = dt.date.fromordinal(birth)
    if date.day > 12:
        return birth
    return dt.date(date.year, date.day, date.month).toordinal()
