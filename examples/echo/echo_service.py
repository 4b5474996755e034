"""TFM_SP_EXAMPLE_ECHO: an IPC-model partition serving one connection-based echo service.

Its thread waits for messages and serves them one at a time.  Each connection
keeps a per-connection state object in its reverse handle (psa_set_rhandle).
Call types: ECHO (0) copies the in-vectors, concatenated, to out-vector 0;
COUNT (1) writes how many ECHO calls the connection made.
"""

from __future__ import annotations

from dataclasses import dataclass

from psaspm.psa import (
    PSA_BLOCK,
    PSA_ERROR_BUFFER_TOO_SMALL,
    PSA_ERROR_NOT_SUPPORTED,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_SUCCESS,
    PSA_WAIT_ANY,
    psa_get,
    psa_msg_t,
    psa_read,
    psa_reply,
    psa_set_rhandle,
    psa_wait,
    psa_write,
)

ECHO = 0
COUNT = 1


@dataclass
class Session:
    calls: int = 0


def serve(msg: psa_msg_t) -> int:
    if msg.type == PSA_IPC_CONNECT:
        psa_set_rhandle(msg.handle, Session())
        return PSA_SUCCESS
    if msg.type == PSA_IPC_DISCONNECT:
        return PSA_SUCCESS
    session: Session = msg.rhandle
    if msg.type == ECHO:
        data = b"".join(psa_read(msg.handle, i, msg.in_size[i]) for i in range(4))
        if len(data) > msg.out_size[0]:
            return PSA_ERROR_BUFFER_TOO_SMALL
        psa_write(msg.handle, 0, data)
        session.calls += 1
        return PSA_SUCCESS
    if msg.type == COUNT:
        psa_write(msg.handle, 0, session.calls.to_bytes(4, "little"))
        return PSA_SUCCESS
    return PSA_ERROR_NOT_SUPPORTED


def echo_main() -> None:
    while True:
        signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        signal = signals & -signals  # one service: its signal is the only one asserted
        msg = psa_get(signal)
        psa_reply(msg.handle, serve(msg))
