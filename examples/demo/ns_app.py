"""The demo's non-secure application: exercises every service of the demo system.

Run it with ``psaspm run examples/demo/demo_manifest_list.yaml --ns
examples/demo/ns_app.py`` (``make demo`` does), or through
``python examples/run.py examples/demo``.  It raises on a wrong result.
"""

from __future__ import annotations

import hashlib
import json
import struct

from psaspm import NsClient, System
from psaspm.psa import (
    PSA_ERROR_CONNECTION_REFUSED,
    PSA_ERROR_DOES_NOT_EXIST,
    PSA_ERROR_NOT_PERMITTED,
    PSA_SUCCESS,
)

# The attestation and timer partitions are IPC-model: the IPC backend is needed.
CONFIGS = [("ipc", 1), ("ipc", 2), ("ipc", 3)]

ITS_SET, ITS_GET, ITS_INFO, ITS_REMOVE = 1001, 1002, 1003, 1004
CRYPTO_HASH, CRYPTO_HMAC = 1, 2
KEY_ATTESTATION, KEY_APP = 1, 2
ATTEST_GET_TOKEN, ATTEST_GET_TOKEN_SIZE = 1001, 1002
TIMER_START, TIMER_STATUS = 1, 2


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise RuntimeError(f"wrong result: {what}")


def uid(value: int) -> bytes:
    return struct.pack("<Q", value)


def storage(ns: NsClient, its: int) -> None:
    print("-- storage (TFM_SP_DEMO_ITS, SFN, stateless)")
    record = b"wifi-psk: correct horse battery staple"
    status = ns.call(its, ITS_SET, [uid(7), record, struct.pack("<I", 0)])
    print(f"  set uid 7 ({len(record)} bytes) -> {status}")
    expect(status == PSA_SUCCESS, "ITS set")
    out = bytearray(64)
    status = ns.call(its, ITS_GET, [uid(7)], [out])
    print(f"  get uid 7 -> {status}: {bytes(out)!r}")
    expect(status == PSA_SUCCESS and out == record, "ITS get returns what was set")
    info = bytearray(8)
    expect(ns.call(its, ITS_INFO, [uid(7)], [info]) == PSA_SUCCESS, "ITS info")
    size, flags = struct.unpack("<II", info)
    print(f"  info uid 7 -> size {size}, flags {flags:#x}")
    expect(ns.call(its, ITS_REMOVE, [uid(7)]) == PSA_SUCCESS, "ITS remove")
    status = ns.call(its, ITS_GET, [uid(7)], [bytearray(8)])
    print(f"  get uid 7 after remove -> {status} (PSA_ERROR_DOES_NOT_EXIST)")
    expect(status == PSA_ERROR_DOES_NOT_EXIST, "removed")
    counter = bytearray(4)
    if ns.call(its, ITS_GET, [uid(1)], [counter]) != PSA_SUCCESS:
        counter[:] = bytes(4)
    runs = struct.unpack("<I", counter)[0] + 1
    expect(ns.call(its, ITS_SET, [uid(1), struct.pack("<I", runs)]) == PSA_SUCCESS, "counter")
    print(f"  this NS application has run {runs} time(s) on this flash image")


def crypto(ns: NsClient, handle: int) -> None:
    print("-- crypto (TFM_SP_DEMO_CRYPTO, SFN, stateless)")
    digest = bytearray(32)
    status = ns.call(handle, CRYPTO_HASH, [b"hello, ", b"secure world"], [digest])
    print(f"  sha256('hello, secure world') -> {status}: {digest.hex()[:32]}...")
    expect(digest == hashlib.sha256(b"hello, secure world").digest(), "SHA-256")
    tag = bytearray(32)
    status = ns.call(handle, CRYPTO_HMAC, [struct.pack("<I", KEY_APP), b"message"], [tag])
    print(f"  hmac(app key, 'message') -> {status}: {tag.hex()[:32]}... (the key stays inside)")
    expect(status == PSA_SUCCESS and len(tag) == 32, "HMAC with the app key")
    status = ns.call(handle, CRYPTO_HMAC, [struct.pack("<I", KEY_ATTESTATION), b"x"], [tag])
    print(f"  hmac(attestation key) from NS -> {status} (PSA_ERROR_NOT_PERMITTED)")
    expect(status == PSA_ERROR_NOT_PERMITTED, "the attestation key is secure-only")


def attestation(ns: NsClient, handle: int) -> None:
    print("-- attestation (TFM_SP_DEMO_ATTEST, IPC thread -> crypto + storage)")
    size_out = bytearray(4)
    status = ns.call(handle, ATTEST_GET_TOKEN_SIZE, [struct.pack("<I", 32)], [size_out])
    (size,) = struct.unpack("<I", size_out)
    print(f"  token size for a 32-byte challenge -> {status}: {size} bytes")
    expect(status == PSA_SUCCESS, "token size")
    challenge = hashlib.sha256(b"nonce from the verifier").digest()
    token = bytearray(size + 16)
    status = ns.call(handle, ATTEST_GET_TOKEN, [challenge], [token])
    expect(status == PSA_SUCCESS and len(token) == size, "token")
    claims = json.loads(token[:-32])
    print(f"  token -> {status}: {len(token)} bytes, HMAC tag {token[-32:].hex()[:16]}...")
    print(
        f"  claims: boot_count={claims['boot_count']}, instance_id={claims['instance_id'][:16]}..."
    )
    expect(claims["challenge"] == challenge.hex(), "the token carries the challenge")


def timer(ns: NsClient, system: System, sid: int) -> None:
    print("-- timer driver (TFM_SP_DEMO_TIMER, IPC, FLIH tick on TIMER0 + SLIH alarm on TIMER1)")
    handle = ns.connect(sid, 1)
    print(f"  psa_connect DEMO_TIMER -> handle {handle:#x}")
    expect(handle > 0, "connect")
    ticks, alarm_after, elapsed = 5, 3, 8
    status = ns.call(
        handle, TIMER_START, [struct.pack("<I", ticks), struct.pack("<I", alarm_after)]
    )
    print(f"  start: {ticks} ticks on TIMER0, an alarm on TIMER1 after {alarm_after} -> {status}")
    expect(status == PSA_SUCCESS, "start")
    system.tick(elapsed)  # platform time passes: the timers count down and interrupt
    print(f"  system.tick({elapsed}): {elapsed} ticks of platform time pass")
    counted, alarms = bytearray(4), bytearray(4)
    status = ns.call(handle, TIMER_STATUS, [], [counted, alarms])
    (count,), (alarm,) = struct.unpack("<I", counted), struct.unpack("<I", alarms)
    print(f"  status -> {status}: the FLIH counted {count} ticks, the SLIH handled {alarm} alarm")
    expect(status == PSA_SUCCESS and count == ticks, f"the FLIH counts {ticks} ticks, then stops")
    expect(alarm == 1, "one alarm, handled by the SLIH")
    ns.close(handle)


def main(ns: NsClient, system: System) -> None:
    names = system.constants
    storage(ns, names["DEMO_ITS_HANDLE"])
    crypto(ns, names["DEMO_CRYPTO_HANDLE"])
    attestation(ns, names["DEMO_ATTEST_HANDLE"])
    timer(ns, system, names["DEMO_TIMER_SID"])
    print("-- access control")
    status = ns.connect(names["DEMO_ITS_SID"], 1)
    print(f"  psa_connect to the stateless ITS service -> {status} (PSA_ERROR_PROGRAMMER_ERROR)")
    status = ns.connect(0xDEAD, 1)
    print(f"  psa_connect to an unknown SID -> {status} (PSA_ERROR_CONNECTION_REFUSED)")
    expect(status == PSA_ERROR_CONNECTION_REFUSED, "unknown SID refused")
