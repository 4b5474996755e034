"""Non-secure application for the stateless example: calls through the static handle."""

from __future__ import annotations

import zlib

from psaspm import NsClient, System
from psaspm.psa import PSA_ERROR_BUFFER_TOO_SMALL, PSA_ERROR_PROGRAMMER_ERROR, PSA_SUCCESS

# SFN-model partitions run under every configuration.
CONFIGS = [("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3)]


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"wrong result: {what}")


def main(ns: NsClient, system: System) -> None:
    handle = system.constants["EXAMPLE_CHECKSUM_HANDLE"]
    sid = system.constants["EXAMPLE_CHECKSUM_SID"]
    print(f"EXAMPLE_CHECKSUM: stateless handle {handle:#x} (no psa_connect needed)")

    parts = [b"The quick brown fox ", b"jumps over ", b"the lazy dog"]
    out = bytearray(4)
    status = ns.call(handle, 0, parts, [out])
    crc = int.from_bytes(out, "big")
    print(f"psa_call -> {status}, CRC-32 {crc:#010x}")
    expect(status == PSA_SUCCESS and crc == zlib.crc32(b"".join(parts)), "checksum")

    status = ns.call(handle, 0, [b"abc"], [bytearray(2)])
    print(f"psa_call with a 2-byte out-vector -> {status}")
    expect(status == PSA_ERROR_BUFFER_TOO_SMALL, "buffer too small")

    status = ns.connect(sid, 1)
    print(f"psa_connect to a stateless service -> {status}")
    expect(status == PSA_ERROR_PROGRAMMER_ERROR, "stateless services take no connections")
