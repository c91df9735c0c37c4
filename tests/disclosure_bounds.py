"""How far a released statistic of an aggregate-only role may be from its
truth, for tests that compare answers with an oracle
(``broker.policy.disclosure``: rounding; ``broker.policy.privacy``: noise)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.policy.model import Role

#: The tail of the noise a tolerance leaves out (per released value).
TAIL = 1e-9


def tolerance(role: Role, table: str, measure: str | None = None, statistics: int = 1) -> float:
    """How far a released count (or sum of ``measure``) may be from its
    truth: below its base, plus, for a private role, the discrete Laplace
    noise of a query of ``statistics`` statistics beyond which a value falls
    with probability under :data:`TAIL`."""
    base = role.tables[table].measures[measure] if measure else role.rounding_base
    if role.privacy is None:
        return base - 1
    sensitivity = role.privacy.rows_per_person[table]
    if measure:
        sensitivity *= role.tables[table].clamps[measure]
    scale = sensitivity * statistics / role.privacy.epsilon_per_query
    return base - 1 + scale * math.log(1 / TAIL)
