"""Tamper-evident audit trail: a hash-chained, signed, append-only JSON log.

The broker keeps one of the queries it answers (``broker.record``), each
adapter one of the scans it serves (``adapters.trace``); so it is shared.

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

    reconcile (reconcile) ---> format
      ``accord audit reconcile``: each adapter's scans matched against the
      broker's queries; the adapter trail's record vocabulary

    log, verify ---> keys (load_or_create_signing_key)
                       the Ed25519 signing key; public key as hex

``format`` and ``keys`` import nothing from the package; ``log``,
``verify``, ``search`` and ``reconcile`` never import one another.  The
format itself (what a line, a checkpoint and a prune line hold) is described
in ``accord.audit.format``.
"""
