"""gRPC metadata keys a partner's client sets on its calls to the broker."""

from __future__ import annotations

#: The person at the partner who asked (audited; the partner vouches for it).
END_USER_METADATA = "x-accord-end-user"
