"""Tamper-evident audit trail: a hash-chained, signed, append-only JSON log.

One module per idea; arrows point at what a module imports::

    log (AuditLog) --------------------+---> format
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
a checkpoint and a prune line hold) is described in ``accord.audit.format``.
"""
