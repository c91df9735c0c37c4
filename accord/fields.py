"""How a text field a caller sends is normalized before it is judged,
recorded or searched for: Unicode NFKC, surrounding whitespace trimmed.

It exists apart from admission (``broker.policy.admission``) because the
audit search (``accord.audit.search``) must normalize what an operator types
the same way admission normalized what the caller sent, and the audit
package never imports a stage of the query path.
"""

from __future__ import annotations

import unicodedata


def normalize(text: str) -> str:
    """NFKC, surrounding whitespace trimmed.

    >>> normalize(" R-2026-0042\\n"), normalize("\\uff32-1")
    ('R-2026-0042', 'R-1')
    """
    return unicodedata.normalize("NFKC", text).strip()
