"""SFN-model partitions behave the same under both backends: under the IPC backend they run
TF-M's common SFN thread (psa_wait, psa_get, call the service function, psa_reply)."""

from __future__ import annotations

import pytest

import psaspm
from psaspm.psa import PSA_ERROR_CONNECTION_REFUSED, PSA_IPC_CONNECT, PSA_IPC_DISCONNECT
from psaspm.system import System

from .support import Config, Part, Spe, service

TWO_SERVICES = """
def init():
    log.append("init")

def counter_sfn(msg):
    log.append(("COUNTER", msg.type, msg.rhandle))
    if msg.type == PSA_IPC_CONNECT:
        psa_set_rhandle(msg.handle, 0)
        return PSA_SUCCESS
    if msg.type == PSA_IPC_DISCONNECT:
        return PSA_SUCCESS
    psa_set_rhandle(msg.handle, msg.rhandle + msg.type)
    psa_write(msg.handle, 0, str(msg.rhandle + msg.type).encode())
    return msg.rhandle + msg.type

def reverse_sfn(msg):
    log.append(("REVERSE", msg.type, msg.in_size[:2]))
    data = psa_read(msg.handle, 0, msg.in_size[0]) + psa_read(msg.handle, 1, msg.in_size[1])
    psa_write(msg.handle, 0, data[::-1])
    return len(data)
"""


def transcript(system: System) -> list[object]:
    ns = system.ns_client(-8)
    reverse = system.constants["REVERSE_HANDLE"]
    out: list[object] = []
    handle = ns.connect(0x5000, 1)
    out.append(handle > 0)
    for step in (2, 3, 0):
        buf = bytearray(8)
        out.append((ns.call(handle, step, [], [buf]), bytes(buf)))
    buf = bytearray(16)
    out.append((ns.call(reverse, 0, [b"abc", b"de"], [buf]), bytes(buf)))
    out.append(ns.connect(0x5000, 2))
    ns.close(handle)
    out.append(system.stats["connections_in_use"])
    return out


def test_same_results_under_both_backends(config: Config, spe: Spe) -> None:
    """An SFN partition with a connection-based and a stateless service gives the same
    replies, out-vectors and message sequence under every configuration."""
    part = Part(
        "TFM_SP_TWO",
        TWO_SERVICES,
        [service("COUNTER", 0x5000), service("REVERSE", 0x5001, connection_based=False)],
        model="SFN",
        entry="init",
    )
    system = spe.boot(config, part)
    assert transcript(system) == [
        True,
        (2, b"2"),
        (5, b"5"),
        (5, b"5"),
        (5, b"edcba"),
        PSA_ERROR_CONNECTION_REFUSED,
        0,
    ]
    assert spe.log == [
        "init",
        ("COUNTER", PSA_IPC_CONNECT, None),
        ("COUNTER", 2, 0),
        ("COUNTER", 3, 2),
        ("COUNTER", 0, 5),
        ("REVERSE", 0, (3, 2)),
        ("COUNTER", PSA_IPC_DISCONNECT, 5),
    ]


def test_a_service_function_replies_by_returning(config: Config, spe: Spe) -> None:
    """An SFN service function's return value is its reply; calling psa_reply on its own
    message as well is a panic of its partition under every configuration."""
    part = Part(
        "TFM_SP_DOUBLE",
        "def double_sfn(msg):\n    psa_reply(msg.handle, 5)\n    return 7\n",
        [service("DOUBLE", 0x5100, connection_based=False)],
        model="SFN",
    )
    system = spe.boot(config, part)
    with pytest.raises(psaspm.Panic) as info:
        system.ns_client().call(system.constants["DOUBLE_HANDLE"])
    assert (info.value.record.partition, info.value.record.api) == ("TFM_SP_DOUBLE", "psa_reply")
