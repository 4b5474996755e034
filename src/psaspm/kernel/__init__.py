"""The SPM kernel: partitions' runtime state, the connection pool, the SPM
frontend (PSA API checks), the two backends and the three interfaces.

Layering: ``kernel`` imports ``errors``, ``consts`` and ``manifest`` only.
"""
