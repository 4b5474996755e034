"""TFM_SP_EXAMPLE_FRONT: tags data for non-secure clients with a key they never see.

Each request's tag is SHA-256(key || client id || data), computed by calling
the stateless EXAMPLE_BACK service (listed in this partition's dependencies)
through its static handle.
"""

from __future__ import annotations

from psaspm import hal
from psaspm.psa import (
    PSA_BLOCK,
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_IPC_CALL,
    PSA_SUCCESS,
    PSA_WAIT_ANY,
    psa_call,
    psa_get,
    psa_msg_t,
    psa_read,
    psa_reply,
    psa_version,
    psa_wait,
    psa_write,
)

KEY = b"example key: secret to the SPE"


def tag(msg: psa_msg_t) -> int:
    if msg.type != PSA_IPC_CALL:
        return PSA_SUCCESS  # CONNECT and DISCONNECT: accept
    if msg.out_size[0] < 32:
        return PSA_ERROR_BUFFER_TOO_SMALL
    data = psa_read(msg.handle, 0, msg.in_size[0])
    client = msg.client_id.to_bytes(4, "little", signed=True)
    digest = bytearray(32)
    # EXAMPLE_BACK_HANDLE is what TF-M's tool generates into sid.h:
    # (1 << 30) | (version << 8) | (stateless_handle - 1).
    back = hal.constants()["EXAMPLE_BACK_HANDLE"]
    status = psa_call(back, PSA_IPC_CALL, [KEY, client, data], [digest])
    if status != PSA_SUCCESS:
        return status
    psa_write(msg.handle, 0, digest)
    return PSA_SUCCESS


def front_main() -> None:
    if psa_version(hal.constants()["EXAMPLE_BACK_SID"]) != 1:  # allowed: a dependency
        raise RuntimeError("EXAMPLE_BACK is missing")
    while True:
        signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        msg = psa_get(signals & -signals)
        psa_reply(msg.handle, tag(msg))
