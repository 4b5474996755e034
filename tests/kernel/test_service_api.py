"""Service API (FF-M 1.1 section 5 / contract section 5): what a partition may do with messages."""

from __future__ import annotations

import pytest

from psaspm import Panic
from psaspm.psa import (
    PSA_ERROR_CONNECTION_BUSY,
    PSA_ERROR_CONNECTION_REFUSED,
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_LIFECYCLE_UNKNOWN,
    PSA_SUCCESS,
)
from psaspm.system import System

from .support import (
    SVC_SID,
    Config,
    Part,
    Spe,
    arg,
    front,
    ipc_partition,
    service,
    sfn_service,
)

DOORBELL_WAITER = """
while True:
    signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
    if signals & PSA_DOORBELL:
        log.append(("doorbell", psa_wait(PSA_DOORBELL, PSA_POLL)))
        psa_clear()
        log.append(("cleared", psa_wait(PSA_DOORBELL, PSA_POLL)))
"""


def call_svc(system: System, *in_vecs: bytes, out: list[bytearray] | None = None) -> int:
    handle = system.constants["SVC_HANDLE"]
    return system.ns_client().call(handle, 0, in_vecs, out or [])


def assert_panic(
    system: System, info: pytest.ExceptionInfo[Panic], partition: str, api: str
) -> None:
    assert system.state == "panicked"
    assert system.panic is info.value.record
    assert (info.value.record.partition, info.value.record.api) == (partition, api)


# ---------------------------------------------------------------- psa_wait / psa_get (IPC)
def test_wait_mask_without_own_signals_panics(ipc_config: Config, spe: Spe) -> None:
    """psa_wait with a mask that holds none of the partition's signals is a panic."""
    part = ipc_partition("TFM_SP_W", "psa_wait(0x1, PSA_BLOCK)", [service("W", 0x2000)])
    system = spe.load(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.boot()
    assert_panic(system, info, "TFM_SP_W", "psa_wait")


def test_wait_poll_returns_zero_when_nothing(ipc_config: Config, spe: Spe) -> None:
    """psa_wait with PSA_POLL returns 0 at once when none of the signals is asserted."""
    part = ipc_partition(
        "TFM_SP_W",
        """
        log.append(("poll", psa_wait(PSA_WAIT_ANY, PSA_POLL)))
        psa_wait(PSA_DOORBELL, PSA_BLOCK)
        """,
        [service("W", 0x2000)],
    )
    spe.boot(ipc_config, part)
    assert spe.log == [("poll", 0)]


def two_clients_and_a_server(server_main: str) -> list[Part]:
    clients = [
        ipc_partition(
            name,
            """
            log.append(("connected", psa_connect(0x2000, 1) > 0))
            while True:
                psa_wait(PSA_DOORBELL, PSA_BLOCK)
            """,
            [service(name[-8:], sid, ns=False)],
            priority="HIGH",  # both run (and block in psa_connect) before the server
            dependencies=("W",),
        )
        for name, sid in (("TFM_SP_CLIENT_A", 0x2001), ("TFM_SP_CLIENT_B", 0x2002))
    ]
    return [*clients, ipc_partition("TFM_SP_W", server_main, [service("W", 0x2000, ns=False)])]


def test_signal_stays_asserted_while_messages_queue(ipc_config: Config, spe: Spe) -> None:
    """A service signal stays asserted after psa_get while more messages are queued, and
    psa_get takes them oldest first."""
    parts = two_clients_and_a_server(
        """
        signal = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        for _ in range(2):
            msg = psa_get(signal)
            log.append(("got", msg.client_id, psa_wait(signal, PSA_POLL)))
            psa_reply(msg.handle, PSA_SUCCESS)
        while True:
            psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        """
    )
    system = spe.boot(ipc_config, *parts)
    a, b = system.constants["TFM_SP_CLIENT_A"], system.constants["TFM_SP_CLIENT_B"]
    got = [entry for entry in spe.log if entry[0] == "got"]
    assert got == [("got", a, 0x10), ("got", b, 0)]
    assert spe.log.count(("connected", True)) == 2


def test_get_unasserted_signal_panics(ipc_config: Config, spe: Spe) -> None:
    """psa_get of a signal that is not asserted is a panic."""
    part = ipc_partition("TFM_SP_W", "psa_get(0x10)", [service("W", 0x2000)])
    system = spe.load(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.boot()
    assert_panic(system, info, "TFM_SP_W", "psa_get")


@pytest.mark.parametrize("signal", [0x30, 0, -1])
def test_get_needs_exactly_one_bit(ipc_config: Config, spe: Spe, signal: int) -> None:
    """psa_get of a signal value that is not exactly one bit is a panic, even if asserted."""
    parts = two_clients_and_a_server(
        f"""
        psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        psa_get({signal})
        """
    )
    system = spe.load(ipc_config, *parts)
    with pytest.raises(Panic) as info:
        system.boot()
    assert_panic(system, info, "TFM_SP_W", "psa_get")


def test_reply_twice_panics(ipc_config: Config, spe: Spe) -> None:
    """A message handle is valid until the reply: replying twice is a panic."""
    parts = two_clients_and_a_server(
        """
        msg = psa_get(psa_wait(PSA_WAIT_ANY, PSA_BLOCK))
        psa_reply(msg.handle, PSA_SUCCESS)
        psa_reply(msg.handle, PSA_SUCCESS)
        """
    )
    system = spe.load(ipc_config, *parts)
    with pytest.raises(Panic) as info:
        system.boot()
    assert_panic(system, info, "TFM_SP_W", "psa_reply")


# ---------------------------------------------------------------- psa_read / psa_skip / psa_write
def test_read_clamped_to_what_remains(config: Config, spe: Spe) -> None:
    """psa_read returns at most what remains of the in-vector, then b''."""
    system = spe.boot(
        config, sfn_service("log.extend(psa_read(msg.handle, 0, 4) for _ in range(3))\nreturn 0")
    )
    assert call_svc(system, b"abcdef") == 0
    assert spe.log == [b"abcd", b"ef", b""]


def test_skip_clamped_to_what_remains(config: Config, spe: Spe) -> None:
    """psa_skip advances by at most what remains and returns how far it went."""
    body = """
    log.append(psa_read(msg.handle, 0, 1))
    log.extend(psa_skip(msg.handle, 0, 3) for _ in range(3))
    log.append(psa_read(msg.handle, 0, 9))
    return 0
    """
    system = spe.boot(config, sfn_service(body))
    call_svc(system, b"abcdef")
    assert spe.log == [b"a", 3, 2, 0, b""]


def test_read_of_absent_vector_is_empty(config: Config, spe: Spe) -> None:
    """psa_read of a vector the client did not pass (index < 4) returns b''."""
    system = spe.boot(config, sfn_service("log.append(psa_read(msg.handle, 2, 8))\nreturn 0"))
    call_svc(system, b"only one")
    assert spe.log == [b""]


@pytest.mark.parametrize("api", ["psa_read(msg.handle, 4, 1)", "psa_skip(msg.handle, 4, 1)"])
def test_read_index_out_of_range_panics(config: Config, spe: Spe, api: str) -> None:
    """psa_read/psa_skip with an in-vector index >= PSA_MAX_IOVEC is a panic."""
    system = spe.boot(config, sfn_service(f"{api}\nreturn 0"))
    with pytest.raises(Panic) as info:
        call_svc(system, b"x")
    assert_panic(system, info, "TFM_SP_SVC", api.split("(")[0])


def test_read_on_connect_message_panics(config: Config, spe: Spe) -> None:
    """psa_read of a CONNECT message (which has no vectors) is a panic."""
    system = spe.boot(
        config, sfn_service("psa_read(msg.handle, 0, 1)\nreturn 0", connection_based=True)
    )
    with pytest.raises(Panic) as info:
        system.ns_client().connect(SVC_SID, 1)
    assert_panic(system, info, "TFM_SP_SVC", "psa_read")


def test_write_concatenates(config: Config, spe: Spe) -> None:
    """Successive psa_write calls append to the out-vector."""
    body = "psa_write(msg.handle, 0, b'ab')\npsa_write(msg.handle, 0, b'cd')\nreturn 0"
    system = spe.boot(config, sfn_service(body))
    out = bytearray(8)
    assert call_svc(system, out=[out]) == 0
    assert out == b"abcd"


def test_write_overflow_panics(config: Config, spe: Spe) -> None:
    """psa_write beyond the out-vector's remaining room is a panic."""
    body = "psa_write(msg.handle, 0, b'ab')\npsa_write(msg.handle, 0, b'cd')\nreturn 0"
    system = spe.boot(config, sfn_service(body))
    with pytest.raises(Panic) as info:
        call_svc(system, out=[bytearray(3)])
    assert_panic(system, info, "TFM_SP_SVC", "psa_write")


def test_write_to_absent_vector_panics(config: Config, spe: Spe) -> None:
    """psa_write of a non-empty buffer to an out-vector the client did not pass is a panic."""
    system = spe.boot(config, sfn_service("psa_write(msg.handle, 1, b'x')\nreturn 0"))
    with pytest.raises(Panic) as info:
        call_svc(system, out=[bytearray(3)])
    assert_panic(system, info, "TFM_SP_SVC", "psa_write")


# ---------------------------------------------------------------- psa_reply
@pytest.mark.parametrize("status", [PSA_ERROR_CONNECTION_REFUSED, PSA_ERROR_CONNECTION_BUSY])
def test_connect_reply_refused_or_busy(config: Config, spe: Spe, status: int) -> None:
    """A CONNECT replied REFUSED or BUSY gives that status to the client and frees the slot."""
    body = f"return {status} if msg.type == PSA_IPC_CONNECT else 0"
    system = spe.boot(config, sfn_service(body, connection_based=True))
    assert system.ns_client().connect(SVC_SID, 1) == status
    assert system.stats["connections_in_use"] == 0


@pytest.mark.parametrize("status", [PSA_ERROR_PROGRAMMER_ERROR, -135, 1])
def test_connect_reply_other_status_panics(config: Config, spe: Spe, status: int) -> None:
    """A CONNECT may only be replied SUCCESS, CONNECTION_REFUSED or CONNECTION_BUSY."""
    body = f"return {status} if msg.type == PSA_IPC_CONNECT else 0"
    system = spe.boot(config, sfn_service(body, connection_based=True))
    with pytest.raises(Panic) as info:
        system.ns_client().connect(SVC_SID, 1)
    assert_panic(system, info, "TFM_SP_SVC", "psa_reply")


def test_disconnect_reply_status_ignored(config: Config, spe: Spe) -> None:
    """The status replied to a DISCONNECT is ignored and the connection is freed."""
    body = "return -135 if msg.type == PSA_IPC_DISCONNECT else PSA_SUCCESS"
    system = spe.boot(config, sfn_service(body, connection_based=True))
    ns = system.ns_client()
    ns.close(ns.connect(SVC_SID, 1))
    assert system.state == "running"
    assert system.stats["connections_in_use"] == 0


def test_programmer_error_reply_to_ns_terminates_connection(config: Config, spe: Spe) -> None:
    """A service replying PROGRAMMER_ERROR to an NS client returns -129, then receives a
    DISCONNECT for that connection; later calls and the close never reach it."""
    body = """
    log.append(msg.type)
    return PSA_ERROR_PROGRAMMER_ERROR if msg.type == 1 else PSA_SUCCESS
    """
    system = spe.boot(config, sfn_service(body, connection_based=True))
    ns = system.ns_client()
    handle = ns.connect(SVC_SID, 1)
    assert ns.call(handle, 0) == PSA_SUCCESS
    assert ns.call(handle, 1) == PSA_ERROR_PROGRAMMER_ERROR
    assert spe.log == [PSA_IPC_CONNECT, 0, 1, PSA_IPC_DISCONNECT]
    assert system.state == "running"
    assert system.stats["connections_in_use"] == 0
    assert ns.call(handle, 0) == PSA_ERROR_PROGRAMMER_ERROR  # the handle is gone
    ns.close(handle)  # silently
    assert spe.log == [PSA_IPC_CONNECT, 0, 1, PSA_IPC_DISCONNECT]


def test_terminated_connection_frees_its_slot_for_others(config: Config, spe: Spe) -> None:
    """After the DISCONNECT of a terminated connection the slot is free again and other
    connections work as before (the pool holds one slot here)."""
    body = "return PSA_ERROR_PROGRAMMER_ERROR if msg.type == 1 else PSA_SUCCESS"
    system = spe.boot(config, sfn_service(body, connection_based=True), max_connections=1)
    ns = system.ns_client()
    first = ns.connect(SVC_SID, 1)
    assert ns.call(first, 1) == PSA_ERROR_PROGRAMMER_ERROR
    second = ns.connect(SVC_SID, 1)
    assert second > 0
    assert ns.call(second, 0) == PSA_SUCCESS


def test_stateless_programmer_error_reply_delivers_no_disconnect(config: Config, spe: Spe) -> None:
    """A stateless service replying PROGRAMMER_ERROR has no connection to end: no DISCONNECT."""
    body = """
    log.append(msg.type)
    return PSA_ERROR_PROGRAMMER_ERROR
    """
    system = spe.boot(config, sfn_service(body))
    ns = system.ns_client()
    assert ns.call(system.constants["SVC_HANDLE"], 3) == PSA_ERROR_PROGRAMMER_ERROR
    assert spe.log == [3]
    assert system.stats["connections_in_use"] == 0


def test_programmer_error_reply_to_secure_client_panics_it(config: Config, spe: Spe) -> None:
    """A service replying PROGRAMMER_ERROR to a secure client panics that client."""
    system = spe.boot(
        config,
        sfn_service("return PSA_ERROR_PROGRAMMER_ERROR"),
        front("return psa_call(arg, 0, [], [])", dependencies=("SVC",)),
    )
    with pytest.raises(Panic) as info:
        system.ns_client().call(
            system.constants["FRONT_HANDLE"], 0, [arg(system.constants["SVC_HANDLE"])]
        )
    assert_panic(system, info, "TFM_SP_FRONT", "psa_call")


# ---------------------------------------------------------------- psa_set_rhandle
RHANDLE_BODY = """
log.append((msg.type, msg.rhandle))
if msg.type == PSA_IPC_CONNECT:
    psa_set_rhandle(msg.handle, {"state": "from connect"})
elif msg.type == 5:
    psa_set_rhandle(msg.handle, "from call 5")
return PSA_SUCCESS
"""


def test_rhandle_carried_to_later_messages(config: Config, spe: Spe) -> None:
    """psa_set_rhandle's value reaches every later message on the connection, DISCONNECT too;
    msg.rhandle is None before."""
    system = spe.boot(config, sfn_service(RHANDLE_BODY, connection_based=True))
    ns = system.ns_client()
    handle = ns.connect(SVC_SID, 1)
    ns.call(handle, 0)
    ns.call(handle, 5)
    ns.call(handle, 0)
    ns.close(handle)
    first = {"state": "from connect"}
    assert spe.log == [(-1, None), (0, first), (5, first), (0, "from call 5"), (-2, "from call 5")]


def test_rhandle_is_per_connection(config: Config, spe: Spe) -> None:
    """Each connection has its own reverse handle."""
    system = spe.boot(config, sfn_service(RHANDLE_BODY, connection_based=True))
    ns = system.ns_client()
    one, two = ns.connect(SVC_SID, 1), ns.connect(SVC_SID, 1)
    ns.call(one, 5)
    ns.call(two, 0)
    assert spe.log[-1] == (0, {"state": "from connect"})


def test_set_rhandle_stateless_panics(config: Config, spe: Spe) -> None:
    """psa_set_rhandle on a stateless service's message is a panic."""
    system = spe.boot(config, sfn_service("psa_set_rhandle(msg.handle, 1)\nreturn 0"))
    with pytest.raises(Panic) as info:
        call_svc(system)
    assert_panic(system, info, "TFM_SP_SVC", "psa_set_rhandle")


# ---------------------------------------------------------------- doorbell (IPC only)
def ringer(target_expr: str = "arg") -> list[Part]:
    return [
        front(f"psa_notify({target_expr})\nreturn 0"),
        ipc_partition("TFM_SP_BELL", DOORBELL_WAITER, [service("BELL", 0x2100)]),
    ]


def test_notify_asserts_doorbell_and_clear_clears_it(ipc_config: Config, spe: Spe) -> None:
    """psa_notify asserts PSA_DOORBELL on the partition with that ID, waking it; psa_clear
    clears it."""
    system = spe.boot(ipc_config, *ringer())
    bell = system.constants["TFM_SP_BELL"]
    assert system.ns_client().call(system.constants["FRONT_HANDLE"], 0, [arg(bell)]) == 0
    assert spe.log == [("doorbell", 0x8), ("cleared", 0)]


def test_notify_unknown_partition_panics(ipc_config: Config, spe: Spe) -> None:
    """psa_notify of a partition ID that does not exist is a panic."""
    system = spe.boot(ipc_config, *ringer())
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["FRONT_HANDLE"], 0, [arg(4000)])
    assert_panic(system, info, "TFM_SP_FRONT", "psa_notify")


def test_clear_without_doorbell_panics(ipc_config: Config, spe: Spe) -> None:
    """psa_clear when PSA_DOORBELL is not asserted is a panic."""
    part = ipc_partition("TFM_SP_W", "psa_clear()", [service("W", 0x2000)])
    system = spe.load(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.boot()
    assert_panic(system, info, "TFM_SP_W", "psa_clear")


# ---------------------------------------------------------------- psa_panic / lifecycle
def test_psa_panic_halts(config: Config, spe: Spe) -> None:
    """psa_panic halts the SPE; the record names the partition and psa_panic."""
    system = spe.boot(config, sfn_service("psa_panic()"))
    with pytest.raises(Panic) as info:
        call_svc(system)
    assert_panic(system, info, "TFM_SP_SVC", "psa_panic")


def test_lifecycle_state_unknown(config: Config, spe: Spe) -> None:
    """psa_rot_lifecycle_state returns PSA_LIFECYCLE_UNKNOWN, as TF-M 1.6 always does."""
    system = spe.boot(config, sfn_service("return psa_rot_lifecycle_state()"))
    assert call_svc(system) == PSA_LIFECYCLE_UNKNOWN == 0
