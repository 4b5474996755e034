"""The SPM kernel, bottom to top (tests/test_layering.py holds the ranks):

- ``memory``, ``api``, ``instruments``: the address space, the PSA API table,
  counters and the tracer protocol;
- ``objects``: plain data crossing the door (vectors, ``psa_msg_t``);
- ``_generated_api``, ``runtime``: the typed interface record; partitions,
  services, interrupt sources and connections of one boot;
- ``door``, ``contract``: partition code's one way in; the backend contract
  and the narrow port backends use;
- ``interrupts``, ``scheduler``, ``sfn``, then ``ipc``: interrupt handling,
  the IPC scheduler, the two backends;
- ``spm``: the frontend (every PSA API's checks and effects);
- ``_generated_entries``, ``interfaces``: how partition code enters the SPM.

The kernel imports ``errors``, ``consts`` and ``manifest`` only from outside.
"""
