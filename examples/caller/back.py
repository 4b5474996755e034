"""TFM_SP_EXAMPLE_BACK: a stateless SHA-256 service for secure partitions only."""

from __future__ import annotations

import hashlib

from psaspm.psa import (
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_SUCCESS,
    psa_msg_t,
    psa_read,
    psa_write,
)


def example_back_sfn(msg: psa_msg_t) -> int:
    if msg.out_size[0] < 32:
        return PSA_ERROR_BUFFER_TOO_SMALL
    digest = hashlib.sha256()
    for index in range(4):
        digest.update(psa_read(msg.handle, index, msg.in_size[index]))
    psa_write(msg.handle, 0, digest.digest())
    return PSA_SUCCESS
