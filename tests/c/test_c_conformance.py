"""The PSA rules of the kernel suite (tests/kernel) hold for C partitions too, in the same
matrix: SFN L1 and IPC L1, L2, L3, in the greenlet and the OS-thread mode.  The service side is tests/c/partitions/c_rules.c, the
client side c_front.c; each call type there is one rule here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import psaspm
from psaspm import Panic
from psaspm.psa import (
    PSA_ERROR_PROGRAMMER_ERROR,
    PSA_FRAMEWORK_VERSION,
    PSA_LIFECYCLE_UNKNOWN,
    PSA_SUCCESS,
)
from psaspm.system import System

PARTITIONS = Path(__file__).resolve().parent / "partitions"
CONFIGS = [("sfn", 1), ("ipc", 1), ("ipc", 2), ("ipc", 3)]

# c_rules.c call types
ECHO, READ_CLAMP, SKIP_CLAMP, READ_ABSENT, READ_BAD_INDEX = 1, 2, 3, 4, 5
WRITE_TWICE, WRITE_OVERFLOW, WRITE_ABSENT, REPLY_PROGRAMMER_ERROR = 6, 7, 8, 9
COUNT_RHANDLE, DISCONNECTS, PANIC, LIFECYCLE, CLIENT_ID, SIZES = 10, 11, 12, 13, 14, 15
# c_front.c call types
FRAMEWORK, VERSION_DEPENDENCY, VERSION_NOT_DEPENDENCY, CONNECT_UNKNOWN = 1, 2, 3, 4
CALL_BAD_HANDLE, TOO_MANY_VECTORS, OUT_RESIZED, NEGATIVE_TYPE, FRONT_CLIENT_ID = 5, 6, 7, 8, 9
FRONT_STATELESS, CONNECT_STATELESS, SERVICE_PROGRAMMER_ERROR = 10, 11, 12


# Each configuration with the C code on its partitions' greenlets, and on OS threads of
# their own (c_threads=True): the rules are the same.
MODES = [(*config, threads) for config in CONFIGS for threads in (False, True)]


@pytest.fixture(params=MODES, ids=lambda c: f"{c[0]}{c[1]}{'-threads' if c[2] else ''}")
def system(request: pytest.FixtureRequest) -> System:
    backend, isolation, threads = request.param
    loaded = psaspm.load(
        [PARTITIONS / "c_rules.yaml", PARTITIONS / "c_front.yaml"],
        backend=backend,
        isolation=isolation,
        c_threads=threads,
    )
    loaded.boot()
    return loaded


def _rules(
    system: System, type: int, ins: list[bytes] | None = None, out: int = 0
) -> tuple[int, bytes]:
    ns = system.ns_client()
    handle = ns.connect(system.constants["CRULES_SID"], 1)
    outs = [bytearray(out)] if out else []
    status = ns.call(handle, type, ins or [], outs)
    if status != PSA_ERROR_PROGRAMMER_ERROR:
        ns.close(handle)
    return status, bytes(outs[0]) if outs else b""


def _front(system: System, type: int) -> int:
    return system.ns_client().call(system.constants["CFRONT_HANDLE"], type)


def _panics(system: System, call: Callable[[], object], partition: str, api: str) -> None:
    with pytest.raises(Panic) as info:
        call()
    assert (info.value.record.partition, info.value.record.api) == (partition, api)
    system.reset()
    assert _rules(system, ECHO, [b"ok"], 4) == (PSA_SUCCESS, b"ok")  # and it goes on


# ---------------------------------------------------------------- service API
def test_c_read_and_write_echo(system: System) -> None:
    """psa_read from C copies the in-vector; psa_write appends it; out len = bytes written."""
    assert _rules(system, ECHO, [b"hello"], 16) == (PSA_SUCCESS, b"hello")


def test_c_read_clamped_to_what_remains(system: System) -> None:
    """psa_read returns fewer bytes at the end of the vector, then 0."""
    assert _rules(system, READ_CLAMP, [b"abcde"])[0] == 500


def test_c_skip_clamped_to_what_remains(system: System) -> None:
    """psa_skip advances like psa_read and is clamped at the end of the vector."""
    assert _rules(system, SKIP_CLAMP, [b"abcdef"], 8) == (300, b"def")


def test_c_read_of_absent_vector_is_empty(system: System) -> None:
    """Reading a vector the client did not pass gives 0 bytes."""
    assert _rules(system, READ_ABSENT, [b"x"])[0] == 0


def test_c_read_index_out_of_range_panics(system: System) -> None:
    """A vector index beyond PSA_MAX_IOVEC is a panic of the C service."""
    _panics(system, lambda: _rules(system, READ_BAD_INDEX, [b"x"]), "TFM_SP_CRULES", "psa_read")


def test_c_write_concatenates(system: System) -> None:
    """Successive psa_write calls append to the out-vector."""
    assert _rules(system, WRITE_TWICE, [], 8) == (PSA_SUCCESS, b"abcd")


def test_c_write_overflow_panics(system: System) -> None:
    """Writing more than the out-vector holds is a panic."""
    _panics(system, lambda: _rules(system, WRITE_OVERFLOW, [], 4), "TFM_SP_CRULES", "psa_write")


def test_c_write_to_absent_vector_panics(system: System) -> None:
    """Writing to an out-vector the client did not pass is a panic."""
    _panics(system, lambda: _rules(system, WRITE_ABSENT, [], 4), "TFM_SP_CRULES", "psa_write")


def test_c_programmer_error_reply_terminates_the_connection(system: System) -> None:
    """A C service replying PROGRAMMER_ERROR to an NS client ends the connection: -129, a
    DISCONNECT reaches the service (it frees its rhandle), later calls are refused."""
    ns = system.ns_client()
    handle = ns.connect(system.constants["CRULES_SID"], 1)
    assert ns.call(handle, REPLY_PROGRAMMER_ERROR) == PSA_ERROR_PROGRAMMER_ERROR
    assert ns.call(handle, ECHO) == PSA_ERROR_PROGRAMMER_ERROR
    assert _rules(system, DISCONNECTS)[0] == 1  # this probe's own close comes after
    assert system.stats["connections_in_use"] == 0


def test_c_rhandle_holds_a_pointer_across_calls(system: System) -> None:
    """The rhandle a C service sets at CONNECT (a calloc'd counter) comes back on every
    message of that connection, and each connection has its own."""
    ns = system.ns_client()
    sid = system.constants["CRULES_SID"]
    first, second = ns.connect(sid, 1), ns.connect(sid, 1)
    assert [ns.call(first, COUNT_RHANDLE) for _ in range(3)] == [1, 2, 3]
    assert ns.call(second, COUNT_RHANDLE) == 1
    ns.close(first)
    ns.close(second)


def test_c_set_rhandle_on_stateless_message_panics(system: System) -> None:
    """psa_set_rhandle on a stateless service's message is a panic."""
    handle = system.constants["CRULES_STATELESS_HANDLE"]
    _panics(
        system,
        lambda: system.ns_client().call(handle, 1),
        "TFM_SP_CRULES",
        "psa_set_rhandle",
    )


def test_c_psa_panic_halts(system: System) -> None:
    """psa_panic from C halts the SPE, recorded against the partition."""
    _panics(system, lambda: _rules(system, PANIC), "TFM_SP_CRULES", "psa_panic")


def test_c_lifecycle_state(system: System) -> None:
    """psa_rot_lifecycle_state from C is the system's lifecycle state."""
    assert _rules(system, LIFECYCLE)[0] == PSA_LIFECYCLE_UNKNOWN


def test_c_service_sees_ns_client_id_and_sizes(system: System) -> None:
    """The psa_msg_t a C service gets carries the NS client's ID and the vector sizes."""
    assert _rules(system, CLIENT_ID)[0] == -1
    ns = system.ns_client()
    handle = ns.connect(system.constants["CRULES_SID"], 1)
    assert ns.call(handle, SIZES, [b"abc", b"de"], [bytearray(4)]) == 3240
    ns.close(handle)


# ---------------------------------------------------------------- client API from C
def test_c_framework_version(system: System) -> None:
    """psa_framework_version from C is FF-M 1.1's."""
    assert _front(system, FRAMEWORK) == PSA_FRAMEWORK_VERSION


def test_c_version_limited_to_dependencies(system: System) -> None:
    """psa_version from C gives a dependency's version and PSA_VERSION_NONE for a service
    the partition does not depend on."""
    assert _front(system, VERSION_DEPENDENCY) == 1
    assert _front(system, VERSION_NOT_DEPENDENCY) == 0


def test_c_out_vector_len_is_updated(system: System) -> None:
    """A C client's psa_call gets its out-vector's len set to the bytes written."""
    assert _front(system, OUT_RESIZED) == 5


def test_c_client_id_of_a_secure_caller_is_its_pid(system: System) -> None:
    """A C partition calling a service is seen with its partition ID."""
    assert _front(system, FRONT_CLIENT_ID) == system.constants["TFM_SP_CFRONT"]


def test_c_stateless_call_through_static_handle(system: System) -> None:
    """A C client calls a stateless service through its generated static handle."""
    assert _front(system, FRONT_STATELESS) == 7


@pytest.mark.parametrize(
    ("rule", "api"),
    [
        (CONNECT_UNKNOWN, "psa_connect"),
        (CONNECT_STATELESS, "psa_connect"),
        (CALL_BAD_HANDLE, "psa_call"),
        (TOO_MANY_VECTORS, "psa_call"),
        (NEGATIVE_TYPE, "psa_call"),
        (SERVICE_PROGRAMMER_ERROR, "psa_call"),
    ],
    ids=[
        "connect-unknown",
        "connect-stateless",
        "bad-handle",
        "too-many",
        "negative-type",
        "service-error",
    ],
)
def test_c_client_misuse_panics_the_caller(system: System, rule: int, api: str) -> None:
    """Misuse by a secure C client (refused connect, bad handle, bad vectors, a service
    replying PROGRAMMER_ERROR) is a panic of that client, as for Python."""
    _panics(system, lambda: _front(system, rule), "TFM_SP_CFRONT", api)
