"""TFM_SP_EXAMPLE_CHECKSUM: an SFN-model partition with a stateless CRC-32 service.

The service function reads every in-vector in small chunks (psa_read returns
fewer bytes at the end of a vector) and writes the CRC-32 of all of them,
4 bytes big-endian, to out-vector 0.
"""

from __future__ import annotations

import zlib

from psaspm.psa import (
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_ERROR_NOT_SUPPORTED,
    PSA_IPC_CALL,
    PSA_SUCCESS,
    psa_msg_t,
    psa_read,
    psa_write,
)

CHUNK = 8
CRC_TABLE_READY = False


def checksum_init() -> int:
    """Runs once at boot, before any message (a negative status would panic)."""
    global CRC_TABLE_READY
    CRC_TABLE_READY = zlib.crc32(b"") == 0
    return PSA_SUCCESS


def example_checksum_sfn(msg: psa_msg_t) -> int:
    if msg.type != PSA_IPC_CALL:
        return PSA_ERROR_NOT_SUPPORTED
    if msg.out_size[0] < 4:
        return PSA_ERROR_BUFFER_TOO_SMALL
    crc = 0
    for index in range(4):
        while chunk := psa_read(msg.handle, index, CHUNK):
            crc = zlib.crc32(chunk, crc)
    psa_write(msg.handle, 0, crc.to_bytes(4, "big"))
    return PSA_SUCCESS
