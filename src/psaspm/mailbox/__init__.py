"""psaspm's multi-process non-secure side: a mailbox transport to a running SPE.

``protocol`` is the wire codec (``docs/mailbox-protocol.md``), shared with
:mod:`psaspm.remote`; ``server`` runs a system behind a Unix or TCP socket
(``psaspm serve``).  Importing this package imports neither.
"""
