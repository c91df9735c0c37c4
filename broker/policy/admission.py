"""Admission: a declared purpose of use the role holds, and a case reference
where the role requires one. Both end up in the audit record."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from accord.errors import PolicyDenied

if TYPE_CHECKING:
    from broker.policy.model import Role

MAX_CASE_REF = 64
_CASE_REF = re.compile(r"^[\w./:#-]+$")


def admit(role: Role, purpose: str, case_ref: str) -> None:
    """Refuses with the rule that was broken.

    >>> from broker.policy.model import Role
    >>> crown = Role("crown_attorney", "", frozenset({"bail_hearing"}), True, {})
    >>> admit(crown, "bail_hearing", "")
    Traceback (most recent call last):
    ...
    accord.errors.PolicyDenied: role crown_attorney must give a case reference with every query
    """
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
    if case_ref and (len(case_ref) > MAX_CASE_REF or not _CASE_REF.match(case_ref)):
        raise PolicyDenied(
            f"a case reference is up to {MAX_CASE_REF} letters, digits and ./:#-_ characters",
            reason="case_ref",
        )
    if role.case_reference_required and not case_ref:
        raise PolicyDenied(
            f"role {role.name} must give a case reference with every query", reason="case_ref"
        )
