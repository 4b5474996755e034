"""TFM_SP_DEMO_ATTEST: an attestation-like service (IPC model, Application RoT).

Its thread counts boots in storage at start-up, then serves token requests.
A token is a claims document (JSON) followed by its HMAC-SHA256 tag, computed
by the crypto partition with the attestation key - which this partition never
sees either.  For every token it reads the boot count from storage and asks
crypto for the tag: NS -> ATTEST (IPC thread) -> ITS and CRYPTO (SFN).

=====================  ====================  ============
type                   in-vectors            out-vectors
=====================  ====================  ============
ATTEST_GET_TOKEN 1001  challenge (32/48/64)  token
ATTEST_GET_TOKEN_SIZE  challenge size (4)    size (4)
1002
=====================  ====================  ============
"""

from __future__ import annotations

import json
import struct

from psaspm import hal
from psaspm.psa import (
    PSA_BLOCK,
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_ERROR_DOES_NOT_EXIST,
    PSA_ERROR_INVALID_ARGUMENT,
    PSA_ERROR_NOT_SUPPORTED,
    PSA_SUCCESS,
    psa_call,
    psa_get,
    psa_msg_t,
    psa_read,
    psa_reply,
    psa_rot_lifecycle_state,
    psa_wait,
    psa_write,
)

ATTEST_GET_TOKEN = 1001
ATTEST_GET_TOKEN_SIZE = 1002
ITS_SET, ITS_GET = 1001, 1002
CRYPTO_HMAC, KEY_ATTESTATION = 2, 1
BOOT_COUNT_UID = 0xB007
TAG_SIZE = 32
CHALLENGE_SIZES = (32, 48, 64)


class Storage:
    """This partition's view of the ITS service (its own uids)."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def get(self, uid: int, size: int) -> bytes | None:
        out = bytearray(size)
        status = psa_call(self.handle, ITS_GET, [struct.pack("<Q", uid)], [out])
        if status == PSA_ERROR_DOES_NOT_EXIST:
            return None
        if status != PSA_SUCCESS:
            raise RuntimeError(f"ITS get failed: {status}")
        return bytes(out)

    def set(self, uid: int, data: bytes) -> None:
        status = psa_call(self.handle, ITS_SET, [struct.pack("<Q", uid), data], [])
        if status != PSA_SUCCESS:
            raise RuntimeError(f"ITS set failed: {status}")


def _tag(crypto: int, *pieces: bytes) -> bytes:
    out = bytearray(TAG_SIZE)
    status = psa_call(crypto, CRYPTO_HMAC, [struct.pack("<I", KEY_ATTESTATION), *pieces], [out])
    if status != PSA_SUCCESS:
        raise RuntimeError(f"crypto HMAC failed: {status}")
    return bytes(out)


class Attestation:
    def __init__(self) -> None:
        names = hal.constants()
        self.storage = Storage(names["DEMO_ITS_HANDLE"])
        self.crypto = names["DEMO_CRYPTO_HANDLE"]
        self.signal = names["DEMO_ATTEST_SIGNAL"]
        # Count this boot in storage: a boot counter that survives reboots.
        stored = self.storage.get(BOOT_COUNT_UID, 4)
        count = (struct.unpack("<I", stored)[0] if stored else 0) + 1
        self.storage.set(BOOT_COUNT_UID, struct.pack("<I", count))
        self.instance_id = _tag(self.crypto, b"instance id").hex()[:32]

    def claims(self, challenge: bytes, client_id: int) -> bytes:
        stored = self.storage.get(BOOT_COUNT_UID, 4)
        boot_count = struct.unpack("<I", stored)[0] if stored else 0
        document = {
            "boot_count": boot_count,
            "challenge": challenge.hex(),
            "client_id": client_id,
            "instance_id": self.instance_id,
            "lifecycle": f"{psa_rot_lifecycle_state():#06x}",
            "profile": "psaspm-demo/1",
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    def token(self, challenge: bytes, client_id: int) -> bytes:
        claims = self.claims(challenge, client_id)
        return claims + _tag(self.crypto, claims)

    def handle(self, msg: psa_msg_t) -> int:
        if msg.type == ATTEST_GET_TOKEN:
            if msg.in_size[0] not in CHALLENGE_SIZES:
                return PSA_ERROR_INVALID_ARGUMENT
            challenge = psa_read(msg.handle, 0, msg.in_size[0])
            token = self.token(challenge, msg.client_id)
            if len(token) > msg.out_size[0]:
                return PSA_ERROR_BUFFER_TOO_SMALL
            psa_write(msg.handle, 0, token)
            return PSA_SUCCESS
        if msg.type == ATTEST_GET_TOKEN_SIZE:
            if msg.in_size[0] != 4 or msg.out_size[0] < 4:
                return PSA_ERROR_INVALID_ARGUMENT
            (size,) = struct.unpack("<I", psa_read(msg.handle, 0, 4))
            if size not in CHALLENGE_SIZES:
                return PSA_ERROR_INVALID_ARGUMENT
            token = self.token(bytes(size), msg.client_id)
            psa_write(msg.handle, 0, struct.pack("<I", len(token)))
            return PSA_SUCCESS
        return PSA_ERROR_NOT_SUPPORTED


def attest_main() -> None:
    service = Attestation()
    while True:
        psa_wait(service.signal, PSA_BLOCK)
        msg = psa_get(service.signal)
        psa_reply(msg.handle, service.handle(msg))
