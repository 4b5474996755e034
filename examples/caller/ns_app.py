"""Non-secure application for the caller example: NS -> FRONT (IPC) -> BACK (SFN)."""

from __future__ import annotations

import hashlib

from psaspm import NsClient, System
from psaspm.psa import PSA_ERROR_CONNECTION_REFUSED, PSA_SUCCESS, PSA_VERSION_NONE

# FRONT is an IPC-model partition, so the IPC backend is needed.
CONFIGS = [("ipc", 1), ("ipc", 2), ("ipc", 3)]

KEY = b"example key: secret to the SPE"  # published here only so the demo can check the tag


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"wrong result: {what}")


def main(ns: NsClient, system: System) -> None:
    back = system.constants["EXAMPLE_BACK_HANDLE"]
    print(f"EXAMPLE_BACK: static handle {back:#x}, not for NS clients")
    expect(back == 0x40000100, "(1 << 30) | (version 1 << 8) | (stateless_handle 1 - 1)")
    expect(ns.version(system.constants["EXAMPLE_BACK_SID"]) == PSA_VERSION_NONE, "hidden")
    status = ns.call(back, 0, [b"x"], [bytearray(32)])
    print(f"NS psa_call to EXAMPLE_BACK directly -> {status}")
    expect(status == PSA_ERROR_CONNECTION_REFUSED, "NS refused by BACK")

    handle = ns.connect(system.constants["EXAMPLE_FRONT_SID"], 1)
    print(f"psa_connect EXAMPLE_FRONT -> handle {handle:#x}")
    expect(handle > 0, f"psa_connect returned {handle}")
    out = bytearray(32)
    status = ns.call(handle, 0, [b"pay 10 EUR"], [out])
    client = ns.client_id.to_bytes(4, "little", signed=True)
    wanted = hashlib.sha256(KEY + client + b"pay 10 EUR").digest()
    print(f"psa_call EXAMPLE_FRONT -> {status}, tag {out.hex()[:16]}...")
    expect(status == PSA_SUCCESS and out == wanted, "tag computed by FRONT through BACK")
    ns.close(handle)
    print(f"messages delivered so far: {system.stats['messages']}")
