"""Admission: a declared purpose of use the role holds, and a case reference
where the role requires one. Both end up in the audit record.

Both are normalized before they are judged (``accord.fields.normalize``:
Unicode NFKC, surrounding whitespace trimmed), then must be written in a small ASCII alphabet: a
purpose is one of the policy's identifiers (snake_case), a case reference
ASCII letters, digits and ``. / : # - _``. So a trailing newline or a
full-width letter is admitted as its plain form, a look-alike letter from
another script is refused, and what the audit records (the normalized form)
is what ``accord audit search --case-ref`` finds. A refusal names the field
and its rule, never the value sent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from accord.errors import PolicyDenied
from accord.fields import normalize

if TYPE_CHECKING:
    from broker.policy.model import Role

#: Longest purpose: the policy's identifiers are short snake_case names.
MAX_PURPOSE = 64
#: Longest case reference: court and agency file numbers are far shorter.
MAX_CASE_REF = 64
_PURPOSE = re.compile(r"[a-z][a-z0-9_]*")
_CASE_REF = re.compile(r"[A-Za-z0-9./:#_-]+")


def admitted_purpose(purpose: str) -> str:
    """The normalized purpose ("" when none), or PolicyDenied."""
    purpose = normalize(purpose)
    if purpose and (len(purpose) > MAX_PURPOSE or not _PURPOSE.fullmatch(purpose)):
        raise PolicyDenied(
            f"a purpose is one of the policy's identifiers: up to {MAX_PURPOSE} characters, "
            "lowercase ASCII letters, digits and _",
            reason="purpose",
        )
    return purpose


def admitted_case_ref(case_ref: str) -> str:
    """The normalized case reference ("" when none), or PolicyDenied."""
    case_ref = normalize(case_ref)
    if case_ref and (len(case_ref) > MAX_CASE_REF or not _CASE_REF.fullmatch(case_ref)):
        raise PolicyDenied(
            f"a case reference is up to {MAX_CASE_REF} characters: ASCII letters, digits "
            "and ./:#-_",
            reason="case_ref",
        )
    return case_ref


def admit(role: Role, purpose: str, case_ref: str) -> None:
    """Refuses with the rule that was broken.

    >>> from broker.policy.model import Role
    >>> crown = Role("crown_attorney", "", frozenset({"bail_hearing"}), True, {})
    >>> admit(crown, "bail_hearing", "")
    Traceback (most recent call last):
    ...
    accord.errors.PolicyDenied: role crown_attorney must give a case reference with every query
    """
    purpose, case_ref = admitted_purpose(purpose), admitted_case_ref(case_ref)
    held = ", ".join(sorted(role.purposes)) or "none"
    if not purpose:
        raise PolicyDenied(
            f"declare a purpose of use; role {role.name} may declare: {held}", reason="purpose"
        )
    if purpose not in role.purposes:
        raise PolicyDenied(
            f"purpose {purpose!r} is not held by role {role.name}; it may declare: {held}",
            reason="purpose",
        )
    if role.case_reference_required and not case_ref:
        raise PolicyDenied(
            f"role {role.name} must give a case reference with every query", reason="case_ref"
        )
