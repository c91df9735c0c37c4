"""Registered victims and the sentences that concern them (``victim_cases``).

A victim registers with the system that holds the sentence for the harm
done to them (CSC's victim services for a federal sentence, CCRA s.26). So
cases are drawn from that system's own sentences for offences against a
person (violent or sexual), and name the sentence by its file, offence code
and sentence date. Registration numbers are ``VR-00001``, ``VR-00002``, ...
in a fixed order: the first goes to the case whose offender has the most
sentences in the system, so ``VR-00001`` exists at any seed and scale and its
offender has sentences that do not concern the victim.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .records import COLUMNS
from .vocabulary import OFFENCES

if TYPE_CHECKING:
    import random

    from .records import Row

#: Share of sentences for an offence against a person with a registered victim.
REGISTERED_SHARE = 0.2
_AGAINST_A_PERSON = frozenset({"violent", "sexual"})
_NO_DIRECT_VICTIM = frozenset({"CC 95"})  # firearm possession: violent, but harms nobody

_S = {name: i for i, name in enumerate(COLUMNS["sentences"])}


def victim_cases(sentences: list[Row], rng: random.Random) -> list[Row]:
    """Rows in ``COLUMNS["victim_cases"]`` order for one system's sentences."""
    per_file: dict[str, int] = {}
    for row in sentences:
        file = row[_S["source_person_id"]]
        per_file[file] = per_file.get(file, 0) + 1
    chosen = [
        row
        for row in sentences
        if row[_S["source_person_id"]] is not None
        and row[_S["sentence_date"]] is not None
        and row[_S["offence_code"]] not in _NO_DIRECT_VICTIM
        and OFFENCES.get(row[_S["offence_code"]], ("", "", "", ""))[3] in _AGAINST_A_PERSON
        and rng.random() < REGISTERED_SHARE
    ]
    chosen.sort(key=lambda r: -per_file[r[_S["source_person_id"]]])  # stable: draw order next
    return [
        (
            row[_S["source_person_id"]],
            row[_S["fps_number"]],
            f"VR-{n:05d}",
            row[_S["offence_code"]],
            row[_S["sentence_date"]],
        )
        for n, row in enumerate(chosen, start=1)
    ]
