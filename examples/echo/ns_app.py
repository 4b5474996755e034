"""Non-secure application for the echo example: connect, call, close."""

from __future__ import annotations

from psaspm import NsClient, System
from psaspm.psa import PSA_ERROR_BUFFER_TOO_SMALL, PSA_ERROR_PROGRAMMER_ERROR, PSA_SUCCESS

# (backend, isolation) configurations this example runs under: IPC-model partitions need IPC.
CONFIGS = [("ipc", 1), ("ipc", 2), ("ipc", 3)]

ECHO = 0
COUNT = 1


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"wrong result: {what}")


def main(ns: NsClient, system: System) -> None:
    sid = system.constants["EXAMPLE_ECHO_SID"]
    print(f"EXAMPLE_ECHO: SID {sid:#x}, version {ns.version(sid)}")

    handle = ns.connect(sid, 1)
    print(f"psa_connect -> handle {handle:#x}")
    expect(handle > 0, f"psa_connect returned {handle}")

    out = bytearray(32)
    status = ns.call(handle, ECHO, [b"hello, ", b"secure world"], [out])
    print(f"psa_call(ECHO) -> {status}, out = {bytes(out)!r}")
    expect(status == PSA_SUCCESS and out == b"hello, secure world", "echo")

    small = bytearray(4)
    status = ns.call(handle, ECHO, [b"too long for four bytes"], [small])
    print(f"psa_call(ECHO) into 4 bytes -> {status}")
    expect(status == PSA_ERROR_BUFFER_TOO_SMALL and small == b"", "buffer too small")

    count = bytearray(4)
    status = ns.call(handle, COUNT, [], [count])
    calls = int.from_bytes(count, "little")
    print(f"psa_call(COUNT) -> {status}, {calls} echo call(s) on this connection")
    expect(status == PSA_SUCCESS and calls == 1, "count kept in the reverse handle")

    ns.close(handle)
    print("psa_close done")
    status = ns.call(handle, ECHO)
    print(f"psa_call on the closed handle -> {status}")
    expect(status == PSA_ERROR_PROGRAMMER_ERROR, "closed handle refused")
