"""Tamper-evident audit trail: a hash-chained, signed, append-only JSON log.

One module per idea; arrows point at what a module imports::

    log (AuditLog, AuditWriteError) ---+---> format
      writes: append + fsync, rotation,|       the record format: file names,
      retention pruning, when to sign  |       canonical JSON, hash chain,
      a checkpoint                     |       checkpoint and prune line shapes
                                       |
    verify (verify, VerifyReport) -----+
      checks hashes, links, signatures;|
      reports the first bad record     |
                                       |
    search (search) -------------------+
      ``accord audit search`` filters

    log, verify ---> keys (load_or_create_signing_key)
                       the Ed25519 signing key; public key as hex

``format`` and ``keys`` import nothing from the package; ``log``, ``verify``
and ``search`` never import one another.  The format itself (what a line,
a checkpoint and a prune line hold) is described in ``broker.audit.format``.

The names below are re-exported for callers that import them from the
package; code in this repository imports them from their modules.  Note that
``broker.audit.verify`` and ``broker.audit.search`` as attributes of the
package are the functions, which shadow their modules: import the modules by
their full name (``from broker.audit.verify import VerifyReport``).
"""

from __future__ import annotations

from broker.audit.format import checkpoint_message, line_hash
from broker.audit.keys import load_or_create_signing_key
from broker.audit.log import AuditLog, AuditWriteError
from broker.audit.search import search
from broker.audit.verify import VerifyReport, verify

__all__ = [
    "AuditLog",
    "AuditWriteError",
    "VerifyReport",
    "checkpoint_message",
    "line_hash",
    "load_or_create_signing_key",
    "search",
    "verify",
]
