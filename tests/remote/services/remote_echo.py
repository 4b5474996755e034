"""TFM_SP_REMOTE_ECHO: echo services for the psaspm serve tests.

REMOTE_ECHO (connection-based) and REMOTE_ECHO_STATELESS call types:
ECHO (0) copies the in-vectors, concatenated, to out-vector 0; PANIC (1) calls
psa_panic; HOLD (2) keeps the message unanswered; RELEASE (3) answers every
held message (PSA_SUCCESS) and replies with how many; BATCH (4) keeps the
message until as many BATCH messages as its in-vector's first byte are held,
then answers them all (the probe's "batches" lists each batch's size); SLOW
(5) takes half a second (the SPE thread sleeps) and answers PSA_SUCCESS; RAISE
(6) divides by zero (a Python exception in partition code: a panic with a
traceback); LOOP (7) prints "looping" on stdout and never returns (a service
that hangs the SPE); STUBBORN (8) does the same but swallows every exception,
so that even psaspm cannot interrupt it.  REMOTE_PROBE writes a
JSON object of what the partition saw: connects, disconnects (client IDs),
calls, and the client IDs of calls.
"""

from __future__ import annotations

import json
import time

from psaspm import hal
from psaspm.psa import (
    PSA_BLOCK,
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_SUCCESS,
    PSA_WAIT_ANY,
    psa_get,
    psa_msg_t,
    psa_panic,
    psa_read,
    psa_reply,
    psa_wait,
    psa_write,
)

ECHO, PANIC, HOLD, RELEASE, BATCH, SLOW, RAISE, LOOP, STUBBORN = 0, 1, 2, 3, 4, 5, 6, 7, 8
SEEN: dict[str, list[int]] = {"connects": [], "disconnects": [], "callers": [], "batches": []}
HELD: list[int] = []
BATCHED: list[int] = []
CALLS = [0]


def echo(msg: psa_msg_t) -> int | None:
    if msg.type == PSA_IPC_CONNECT:
        SEEN["connects"].append(msg.client_id)
        return PSA_SUCCESS
    if msg.type == PSA_IPC_DISCONNECT:
        SEEN["disconnects"].append(msg.client_id)
        return PSA_SUCCESS
    CALLS[0] += 1
    if msg.client_id not in SEEN["callers"]:
        SEEN["callers"].append(msg.client_id)
    if msg.type == PANIC:
        psa_panic()
    if msg.type == HOLD:
        HELD.append(msg.handle)
        return None
    if msg.type == SLOW:
        time.sleep(0.5)
        return PSA_SUCCESS
    if msg.type == RAISE:
        return len(SEEN) // (msg.in_size[0] * 0)
    if msg.type == LOOP:
        print("looping", flush=True)
        spins = 0
        while True:
            spins += 1
    if msg.type == STUBBORN:
        print("looping", flush=True)
        while True:
            try:
                while True:
                    pass
            except BaseException:  # the point: nothing stops it
                pass
    if msg.type == BATCH:
        BATCHED.append(msg.handle)
        if len(BATCHED) < psa_read(msg.handle, 0, 1)[0]:
            return None
        SEEN["batches"].append(len(BATCHED))
        for handle in BATCHED:
            psa_reply(handle, PSA_SUCCESS)
        BATCHED.clear()
        return None
    if msg.type == RELEASE:
        held = len(HELD)
        for handle in HELD:
            psa_reply(handle, PSA_SUCCESS)
        HELD.clear()
        return held
    data = b"".join(psa_read(msg.handle, i, msg.in_size[i]) for i in range(4))
    if len(data) > msg.out_size[0]:
        return PSA_ERROR_BUFFER_TOO_SMALL
    psa_write(msg.handle, 0, data)
    return PSA_SUCCESS


def probe(msg: psa_msg_t) -> int:
    report = json.dumps({**SEEN, "calls": CALLS[0], "held": len(HELD)}).encode()
    psa_write(msg.handle, 0, report[: msg.out_size[0]])
    return PSA_SUCCESS


def remote_echo_main() -> None:
    probe_signal = hal.constants()["REMOTE_PROBE_SIGNAL"]
    while True:
        signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        while signals:
            signal = signals & -signals
            signals &= ~signal
            msg = psa_get(signal)
            status = probe(msg) if signal == probe_signal else echo(msg)
            if status is not None:
                psa_reply(msg.handle, status)
