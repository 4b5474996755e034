"""Client API (FF-M 1.1 section 4 / contract section 4): what a caller gets back."""

from __future__ import annotations

from typing import Any

from psaspm.psa import (
    PSA_ERROR_CONNECTION_BUSY,
    PSA_ERROR_CONNECTION_REFUSED,
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_FRAMEWORK_VERSION,
    PSA_IPC_CALL,
    PSA_IPC_CONNECT,
    PSA_IPC_DISCONNECT,
    PSA_VERSION_NONE,
)

from .support import (
    ECHO_SID,
    STATELESS_SID,
    Config,
    Spe,
    arg,
    echo_sfn,
    front,
    stateless_echo,
)

UNKNOWN_SID = 0xDEAD


def requests(log: list[Any]) -> list[tuple[Any, ...]]:
    """The messages the echo services logged."""
    return [entry for entry in log if isinstance(entry, tuple) and entry[0].startswith("TFM_SP_")]


# ---------------------------------------------------------------- framework version
def test_framework_version_ns(config: Config, spe: Spe) -> None:
    """psa_framework_version returns 0x0101 (FF-M 1.1) to a non-secure caller."""
    system = spe.boot(config, echo_sfn())
    assert system.ns_client().framework_version() == PSA_FRAMEWORK_VERSION == 0x0101


def test_framework_version_secure(config: Config, spe: Spe) -> None:
    """psa_framework_version returns 0x0101 to a secure partition too."""
    system = spe.boot(config, front("return psa_framework_version()"))
    assert system.ns_client().call(system.constants["FRONT_HANDLE"]) == 0x0101


# ---------------------------------------------------------------- psa_version
def test_version_of_a_service(config: Config, spe: Spe) -> None:
    """psa_version returns the service's manifest version."""
    system = spe.boot(config, echo_sfn(version=3, policy="RELAXED"))
    assert system.ns_client().version(ECHO_SID) == 3


def test_version_of_a_stateless_service(config: Config, spe: Spe) -> None:
    """psa_version does not care whether the service is stateless."""
    system = spe.boot(config, stateless_echo(version=4, policy="RELAXED"))
    assert system.ns_client().version(STATELESS_SID) == 4


def test_version_unknown_sid(config: Config, spe: Spe) -> None:
    """psa_version of an unknown SID is PSA_VERSION_NONE (0)."""
    system = spe.boot(config, echo_sfn())
    assert system.ns_client().version(UNKNOWN_SID) == PSA_VERSION_NONE == 0


def test_version_ns_not_allowed(config: Config, spe: Spe) -> None:
    """psa_version of a service without non_secure_clients is 0 for a non-secure caller."""
    system = spe.boot(config, echo_sfn(ns=False, version=2))
    assert system.ns_client().version(ECHO_SID) == PSA_VERSION_NONE


def test_version_secure_limited_to_dependencies(config: Config, spe: Spe) -> None:
    """A secure caller sees the version only of services in its manifest dependencies."""
    system = spe.boot(
        config,
        echo_sfn(version=2, policy="RELAXED"),
        stateless_echo(version=5, policy="RELAXED"),
        front(
            f"return psa_version({ECHO_SID}) * 100 + psa_version({STATELESS_SID})",
            dependencies=("STATELESS",),
        ),
    )
    assert system.ns_client().call(system.constants["FRONT_HANDLE"]) == 5
    assert system.state == "running"


# ---------------------------------------------------------------- psa_connect
def test_connect_returns_a_handle(config: Config, spe: Spe) -> None:
    """psa_connect to a connection-based service returns a handle > 0 and delivers CONNECT."""
    system = spe.boot(config, echo_sfn())
    handle = system.ns_client(-3).connect(ECHO_SID, 1)
    assert handle > 0
    assert requests(spe.log) == [("TFM_SP_ECHO", PSA_IPC_CONNECT, -3, (0,) * 4, (0,) * 4, None)]


def test_connect_unknown_sid_refused(config: Config, spe: Spe) -> None:
    """psa_connect to an unknown SID returns CONNECTION_REFUSED (-130) to a non-secure caller."""
    system = spe.boot(config, echo_sfn())
    assert system.ns_client().connect(UNKNOWN_SID, 1) == PSA_ERROR_CONNECTION_REFUSED == -130
    assert spe.log == []


def test_connect_stateless_programmer_error(config: Config, spe: Spe) -> None:
    """psa_connect to a stateless service returns PROGRAMMER_ERROR (-129)."""
    system = spe.boot(config, stateless_echo())
    assert system.ns_client().connect(STATELESS_SID, 1) == PSA_ERROR_PROGRAMMER_ERROR == -129
    assert spe.log == []


def test_connect_ns_refused_without_non_secure_clients(config: Config, spe: Spe) -> None:
    """psa_connect from NS to a service without non_secure_clients is refused (-130)."""
    system = spe.boot(config, echo_sfn(ns=False))
    assert system.ns_client().connect(ECHO_SID, 1) == PSA_ERROR_CONNECTION_REFUSED
    assert spe.log == []


def test_connect_strict_version_policy(config: Config, spe: Spe) -> None:
    """A STRICT service accepts exactly its own version."""
    system = spe.boot(config, echo_sfn(version=2, policy="STRICT"))
    ns = system.ns_client()
    assert ns.connect(ECHO_SID, 1) == PSA_ERROR_CONNECTION_REFUSED
    assert ns.connect(ECHO_SID, 3) == PSA_ERROR_CONNECTION_REFUSED
    assert ns.connect(ECHO_SID, 2) > 0
    assert len(requests(spe.log)) == 1


def test_connect_relaxed_version_policy(config: Config, spe: Spe) -> None:
    """A RELAXED service accepts its own version and any lower one, never a higher one."""
    system = spe.boot(config, echo_sfn(version=2, policy="RELAXED"))
    ns = system.ns_client()
    assert ns.connect(ECHO_SID, 1) > 0
    assert ns.connect(ECHO_SID, 2) > 0
    assert ns.connect(ECHO_SID, 3) == PSA_ERROR_CONNECTION_REFUSED
    assert len(requests(spe.log)) == 2


def test_connect_pool_exhausted_busy(config: Config, spe: Spe) -> None:
    """With every pool slot in use psa_connect returns CONNECTION_BUSY (-131); a close frees one."""
    system = spe.boot(config, echo_sfn(), max_connections=2)
    ns = system.ns_client()
    first = ns.connect(ECHO_SID, 1)
    assert ns.connect(ECHO_SID, 1) > 0
    assert ns.connect(ECHO_SID, 1) == PSA_ERROR_CONNECTION_BUSY == -131
    assert system.state == "running"
    assert len(requests(spe.log)) == 2
    ns.close(first)
    assert ns.connect(ECHO_SID, 1) > 0


def test_stateless_call_pool_exhausted_busy(config: Config, spe: Spe) -> None:
    """A stateless call needs a pool slot too: none free gives CONNECTION_BUSY, not a panic."""
    system = spe.boot(config, echo_sfn(), stateless_echo(), max_connections=1)
    ns = system.ns_client()
    assert ns.connect(ECHO_SID, 1) > 0
    assert ns.call(system.constants["STATELESS_HANDLE"]) == PSA_ERROR_CONNECTION_BUSY
    assert system.state == "running"


def test_connect_pool_exhausted_busy_for_secure_caller(config: Config, spe: Spe) -> None:
    """Pool exhaustion is not a programmer error: a secure caller gets -131 and no panic."""
    system = spe.boot(
        config,
        echo_sfn(),
        front(f"return psa_connect({ECHO_SID}, 1)", dependencies=("ECHO",)),
        max_connections=1,  # the NS call to FRONT holds the only slot
    )
    assert system.ns_client().call(system.constants["FRONT_HANDLE"]) == PSA_ERROR_CONNECTION_BUSY
    assert system.state == "running"
    assert system.panic is None


# ---------------------------------------------------------------- psa_call
def test_call_returns_the_replied_status(config: Config, spe: Spe) -> None:
    """psa_call returns the status the service replied, positive or negative."""
    system = spe.boot(config, echo_sfn())
    ns = system.ns_client()
    handle = ns.connect(ECHO_SID, 1)
    assert ns.call(handle, 7) == 7  # the echo replies with the request type
    assert ns.call(handle, 0) == 0


def test_call_negative_type_programmer_error(config: Config, spe: Spe) -> None:
    """psa_call with a type < 0 returns PROGRAMMER_ERROR and delivers nothing."""
    system = spe.boot(config, echo_sfn())
    ns = system.ns_client()
    handle = ns.connect(ECHO_SID, 1)
    assert ns.call(handle, -1) == PSA_ERROR_PROGRAMMER_ERROR
    assert ns.call(handle, -5) == PSA_ERROR_PROGRAMMER_ERROR
    assert [m[1] for m in requests(spe.log)] == [PSA_IPC_CONNECT]


def test_call_too_many_vectors(config: Config, spe: Spe) -> None:
    """More than PSA_MAX_IOVEC (4) vectors in total is PROGRAMMER_ERROR and nothing is queued."""
    system = spe.boot(config, echo_sfn())
    ns = system.ns_client()
    handle = ns.connect(ECHO_SID, 1)
    before = system.stats["messages"]
    outs = [bytearray(2), bytearray(2)]
    assert ns.call(handle, 0, [b"a", b"b", b"c"], outs) == PSA_ERROR_PROGRAMMER_ERROR
    assert ns.call(handle, 0, [b"a"] * 5) == PSA_ERROR_PROGRAMMER_ERROR
    assert system.stats["messages"] == before
    assert len(requests(spe.log)) == 1
    assert outs == [bytearray(2), bytearray(2)]
    assert ns.call(handle, 0, [b"a", b"b"], outs) == 0  # four vectors are fine


def test_call_invalid_handle(config: Config, spe: Spe) -> None:
    """psa_call with the null handle, a negative or an unknown handle is PROGRAMMER_ERROR."""
    system = spe.boot(config, echo_sfn())
    ns = system.ns_client()
    for handle in (0, -1, 0x7770, 12345):
        assert ns.call(handle) == PSA_ERROR_PROGRAMMER_ERROR
    assert spe.log == []


def test_call_foreign_connection(config: Config, spe: Spe) -> None:
    """Only the client that connected may use the handle; another NS client gets -129."""
    system = spe.boot(config, echo_sfn())
    handle = system.ns_client(-1).connect(ECHO_SID, 1)
    assert system.ns_client(-2).call(handle) == PSA_ERROR_PROGRAMMER_ERROR
    assert system.ns_client(-1).call(handle, 4) == 4


def test_call_stateless_static_handle(config: Config, spe: Spe) -> None:
    """A stateless service is called through its static handle, with no connect; the service
    sees a message handle of its own, not the static handle."""
    system = spe.boot(config, stateless_echo(), echo_sfn())
    static = system.constants["STATELESS_HANDLE"]
    assert static & (1 << 30)
    out = bytearray(8)
    assert system.ns_client().call(static, 3, [b"hi"], [out]) == 3
    assert out == b"hi"
    assert system.stats["connections_in_use"] == 0


def test_call_static_handle_refusing_ns(config: Config, spe: Spe) -> None:
    """psa_call by NS through the static handle of a service refusing NS clients is -130."""
    system = spe.boot(config, stateless_echo(ns=False))
    status = system.ns_client().call(system.constants["STATELESS_HANDLE"])
    assert status == PSA_ERROR_CONNECTION_REFUSED
    assert spe.log == []


def test_call_bogus_static_handle(config: Config, spe: Spe) -> None:
    """A handle with the static bit that names no stateless service is PROGRAMMER_ERROR."""
    system = spe.boot(config, stateless_echo())
    static = system.constants["STATELESS_HANDLE"]
    ns = system.ns_client()
    assert ns.call((1 << 30) | 0x101 | 0x1F) == PSA_ERROR_PROGRAMMER_ERROR  # empty slot 31
    assert ns.call(static ^ 0x200) == PSA_ERROR_PROGRAMMER_ERROR  # wrong version byte
    assert spe.log == []


def test_call_outvec_resized_to_written(config: Config, spe: Spe) -> None:
    """On return each out-vector is resized to the bytes the service wrote (0 if none)."""
    system = spe.boot(config, stateless_echo())
    first, second = bytearray(10), bytearray(b"xxxx")
    status = system.ns_client().call(
        system.constants["STATELESS_HANDLE"], 0, [b"abc"], [first, second]
    )
    assert status == 0
    assert first == b"abc"
    assert second == b""


def test_call_sizes_seen_by_service(config: Config, spe: Spe) -> None:
    """The service sees in_size/out_size of every vector, zero for vectors not passed."""
    system = spe.boot(config, stateless_echo())
    system.ns_client(-9).call(
        system.constants["STATELESS_HANDLE"], 2, [b"12345", b""], [bytearray(7)]
    )
    assert requests(spe.log) == [("TFM_SP_STATELESS", 2, -9, (5, 0, 0, 0), (7, 0, 0, 0), None)]


def test_call_vectors_are_values(config: Config, spe: Spe) -> None:
    """bytes, bytearray and memoryview are all accepted as in-vectors, even the same object twice."""
    system = spe.boot(config, stateless_echo())
    data = bytearray(b"same")
    out = bytearray(4)
    handle = system.constants["STATELESS_HANDLE"]
    assert system.ns_client().call(handle, 0, [data, data, memoryview(b"x")], [out]) == 0
    assert out == b"same"


# ---------------------------------------------------------------- psa_close
def test_close_delivers_disconnect(config: Config, spe: Spe) -> None:
    """psa_close delivers a DISCONNECT message and frees the connection."""
    system = spe.boot(config, echo_sfn())
    ns = system.ns_client(-4)
    handle = ns.connect(ECHO_SID, 1)
    ns.close(handle)
    types = [m[1] for m in requests(spe.log)]
    assert types == [PSA_IPC_CONNECT, PSA_IPC_DISCONNECT]
    assert system.stats["connections_in_use"] == 0


def test_close_makes_handle_invalid(config: Config, spe: Spe) -> None:
    """After psa_close the handle is invalid: psa_call returns -129 and nothing is delivered."""
    system = spe.boot(config, echo_sfn())
    ns = system.ns_client()
    handle = ns.connect(ECHO_SID, 1)
    ns.close(handle)
    assert ns.call(handle) == PSA_ERROR_PROGRAMMER_ERROR
    ns.close(handle)  # closing it again is silent for NS
    assert len(requests(spe.log)) == 2


def test_close_invalid_handle_silent_for_ns(config: Config, spe: Spe) -> None:
    """psa_close of the null handle, an unknown handle or a static handle returns silently to NS."""
    system = spe.boot(config, stateless_echo())
    ns = system.ns_client()
    for handle in (0, 0x7770, -3, system.constants["STATELESS_HANDLE"]):
        ns.close(handle)
    assert system.state == "running"
    assert spe.log == []


# ---------------------------------------------------------------- client IDs
def test_client_id_non_secure(config: Config, spe: Spe) -> None:
    """A service sees msg.client_id equal to the NS client's own negative ID, on every message."""
    system = spe.boot(config, echo_sfn())
    ns = system.ns_client(-42)
    handle = ns.connect(ECHO_SID, 1)
    ns.call(handle)
    ns.close(handle)
    assert [m[2] for m in requests(spe.log)] == [-42, -42, -42]


def test_client_id_secure(config: Config, spe: Spe) -> None:
    """A service called by a secure partition sees msg.client_id equal to the caller's PID."""
    system = spe.boot(
        config,
        stateless_echo(),
        front(
            f"return psa_call(arg, {PSA_IPC_CALL}, [], [])",
            dependencies=("STATELESS",),
        ),
    )
    handle = system.constants["STATELESS_HANDLE"]
    assert system.ns_client().call(system.constants["FRONT_HANDLE"], 0, [arg(handle)]) == 0
    pid = system.constants["TFM_SP_FRONT"]
    assert pid >= 256
    assert [m[2] for m in requests(spe.log)] == [pid]


def test_secure_call_outvec_resized(config: Config, spe: Spe) -> None:
    """psa_call from partition code resizes its bytearray out-vectors to the bytes written."""
    system = spe.boot(
        config,
        stateless_echo(),
        front(
            "out = bytearray(16)\n"
            "status = psa_call(arg, 0, [b'secure'], [out])\n"
            "log.append(('front', status, bytes(out)))\n"
            "return len(out)",
            dependencies=("STATELESS",),
        ),
    )
    handle = system.constants["STATELESS_HANDLE"]
    assert system.ns_client().call(system.constants["FRONT_HANDLE"], 0, [arg(handle)]) == 6
    assert ("front", 0, b"secure") in spe.log
