"""A history request, admitted: every field checked, each refusal naming
its field (INVALID_ARGUMENT), purpose and case reference normalized as for
a query (``broker.policy.admission``).

Names never reach SQL: a name search fetches the files born on the date
(or its day/month swap) and compares names in the broker. The FPS number
and the date do reach SQL, as literals, so both are checked against their
exact form first.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from accord.errors import InvalidQuery
from broker.policy.admission import admitted_case_ref, admitted_purpose

#: Seven digits and a check letter, as the national index issues them.
FPS_NUMBER = re.compile(r"[0-9]{7}[A-Z]")
#: Longest name, given names or place a search may give.
MAX_NAME = 100
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class HistoryQuery:
    """By ``fps_number``, or by name (``surname``, ``given_names``, ``birth_date``)."""

    fps_number: str | None
    surname: str | None
    given_names: str | None
    birth_date: dt.date | None
    birth_place: str | None
    purpose: str
    case_ref: str
    timeout_ms: int

    @property
    def by_name(self) -> bool:
        return self.fps_number is None


def admit_history(
    fps_number: str,
    surname: str,
    given_names: str,
    birth_date: str,
    birth_place: str,
    purpose: str,
    case_ref: str,
    timeout_ms: int,
) -> HistoryQuery:
    names = {"surname": surname, "given_names": given_names, "birth_place": birth_place}
    for field, value in names.items():
        _check_name(field, value)
    if timeout_ms < 0:
        raise InvalidQuery("timeout_ms must not be negative")
    fps = fps_number.strip().upper()
    searching = any(v.strip() for v in (surname, given_names, birth_date, birth_place))
    if fps and searching:
        raise InvalidQuery("give fps_number, or surname, given_names and birth_date; not both")
    admitted = {"purpose": admitted_purpose(purpose), "case_ref": admitted_case_ref(case_ref)}
    if fps:
        if not FPS_NUMBER.fullmatch(fps):
            raise InvalidQuery("fps_number is seven digits and a letter, e.g. 1234567K")
        return HistoryQuery(fps, None, None, None, None, timeout_ms=timeout_ms, **admitted)
    missing = [f for f, v in (("surname", surname), ("given_names", given_names)) if not v.strip()]
    if not birth_date.strip():
        missing.append("birth_date")
    if missing:
        raise InvalidQuery(
            f"a history needs fps_number, or surname, given_names and birth_date "
            f"(missing: {', '.join(missing)})"
        )
    return HistoryQuery(
        None,
        surname.strip(),
        given_names.strip(),
        _date(birth_date.strip()),
        birth_place.strip() or None,
        timeout_ms=timeout_ms,
        **admitted,
    )


def _check_name(field: str, value: str) -> None:
    if len(value) > MAX_NAME:
        raise InvalidQuery(f"{field} is at most {MAX_NAME} characters")
    if any(not c.isprintable() for c in value):
        raise InvalidQuery(f"{field} holds a control character")


def _date(text: str) -> dt.date:
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidQuery("birth_date is a date as YYYY-MM-DD, e.g. 1979-04-07") from None
