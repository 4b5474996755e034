"""TFM_SP_DEMO_CRYPTO: a crypto-like service (SFN model, stateless).

Hashing (SHA-256) and HMAC-SHA256 with keys that never leave the partition:
they are derived at boot from a hardware unique key (HUK) private to this
file, as TF-M derives its keys from the platform's HUK.  Callers name a key by
its id; the service checks who may use it.

=================  =========================================  =============
type               in-vectors                                 out-vectors
=================  =========================================  =============
CRYPTO_HASH 1      up to 3 pieces of data, hashed in order    digest (32)
CRYPTO_HMAC 2      key id (4 bytes LE), then up to 2 pieces   tag (32)
=================  =========================================  =============

Key ids: ``KEY_ATTESTATION`` (1) is for secure partitions only (the
attestation service signs tokens with it); ``KEY_APP`` (2) is for anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from psaspm.psa import (
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_ERROR_INVALID_ARGUMENT,
    PSA_ERROR_INVALID_HANDLE,
    PSA_ERROR_NOT_PERMITTED,
    PSA_ERROR_NOT_SUPPORTED,
    PSA_SUCCESS,
    psa_msg_t,
    psa_read,
    psa_write,
)

CRYPTO_HASH = 1
CRYPTO_HMAC = 2
KEY_ATTESTATION = 1
KEY_APP = 2
DIGEST_SIZE = 32

_HUK = bytes.fromhex("5a1c0ffee0ddf00d" * 4)  # the demo's "hardware unique key"
_KEYS: dict[int, bytes] = {}  # key id -> key bytes, derived at boot; never written out


def crypto_init() -> int:
    for key_id, label in ((KEY_ATTESTATION, b"attestation"), (KEY_APP, b"application")):
        _KEYS[key_id] = hmac.digest(_HUK, b"psaspm demo key derivation: " + label, "sha256")
    return PSA_SUCCESS


def _data(msg: psa_msg_t, first: int) -> list[bytes]:
    return [psa_read(msg.handle, i, msg.in_size[i]) for i in range(first, 4) if msg.in_size[i]]


def demo_crypto_sfn(msg: psa_msg_t) -> int:
    if msg.out_size[0] < DIGEST_SIZE:
        return PSA_ERROR_BUFFER_TOO_SMALL
    if msg.type == CRYPTO_HASH:
        digest = hashlib.sha256()
        for piece in _data(msg, 0):
            digest.update(piece)
        psa_write(msg.handle, 0, digest.digest())
        return PSA_SUCCESS
    if msg.type == CRYPTO_HMAC:
        if msg.in_size[0] != 4:
            return PSA_ERROR_INVALID_ARGUMENT
        (key_id,) = struct.unpack("<I", psa_read(msg.handle, 0, 4))
        key = _KEYS.get(key_id)
        if key is None:
            return PSA_ERROR_INVALID_HANDLE
        if key_id == KEY_ATTESTATION and msg.client_id < 0:
            return PSA_ERROR_NOT_PERMITTED  # the attestation key is for secure callers only
        mac = hmac.new(key, digestmod="sha256")
        for piece in _data(msg, 1):
            mac.update(piece)
        psa_write(msg.handle, 0, mac.digest())
        return PSA_SUCCESS
    return PSA_ERROR_NOT_SUPPORTED
