"""Misuse classified (contract sections 4 and 6): a status for NS, a panic for secure callers;
what a panic leaves behind, and reset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from psaspm import NsClient, Panic
from psaspm.psa import PSA_ERROR_CONNECTION_REFUSED, PSA_ERROR_PROGRAMMER_ERROR
from psaspm.system import System

from .support import (
    ECHO_SID,
    STATELESS_SID,
    Config,
    Spe,
    arg,
    echo,
    front,
    ipc_partition,
    service,
    sfn_service,
    stateless_echo,
)

SECRET_SID = 0x1300
HIDDEN_SID = 0x1400


@dataclass(frozen=True)
class Misuse:
    secure: str  # front_sfn body; ``arg`` is the handle named by ``handle``
    ns: Callable[[NsClient, int], object]
    ns_status: int | None  # what NS gets back (None: psa_close returns nothing)
    api: str
    handle: str | None = None  # a constant of the system passed as ``arg``


MISUSES = {
    "connect unknown SID": Misuse(
        "psa_connect(0xDEAD, 1)",
        lambda ns, h: ns.connect(0xDEAD, 1),
        PSA_ERROR_CONNECTION_REFUSED,
        "psa_connect",
    ),
    "connect stateless service": Misuse(
        f"psa_connect({STATELESS_SID}, 1)",
        lambda ns, h: ns.connect(STATELESS_SID, 1),
        PSA_ERROR_PROGRAMMER_ERROR,
        "psa_connect",
    ),
    "connect not allowed": Misuse(
        f"psa_connect({SECRET_SID}, 1)",  # not among FRONT's dependencies
        lambda ns, h: ns.connect(SECRET_SID, 1),  # no non_secure_clients
        PSA_ERROR_CONNECTION_REFUSED,
        "psa_connect",
    ),
    "connect version refused": Misuse(
        f"psa_connect({ECHO_SID}, 9)",
        lambda ns, h: ns.connect(ECHO_SID, 9),
        PSA_ERROR_CONNECTION_REFUSED,
        "psa_connect",
    ),
    "call negative type": Misuse(
        "psa_call(arg, -3, [], [])",
        lambda ns, h: ns.call(h, -3),
        PSA_ERROR_PROGRAMMER_ERROR,
        "psa_call",
        "STATELESS_HANDLE",
    ),
    "call five vectors": Misuse(
        "psa_call(arg, 0, [b'a'] * 3, [bytearray(1)] * 2)",
        lambda ns, h: ns.call(h, 0, [b"a"] * 3, [bytearray(1), bytearray(1)]),
        PSA_ERROR_PROGRAMMER_ERROR,
        "psa_call",
        "STATELESS_HANDLE",
    ),
    "call null handle": Misuse(
        "psa_call(0, 0, [], [])",
        lambda ns, h: ns.call(0),
        PSA_ERROR_PROGRAMMER_ERROR,
        "psa_call",
    ),
    "call invalid handle": Misuse(
        "psa_call(0x7770, 0, [], [])",
        lambda ns, h: ns.call(0x7770),
        PSA_ERROR_PROGRAMMER_ERROR,
        "psa_call",
    ),
    "call static handle not allowed": Misuse(
        "psa_call(arg, 0, [], [])",  # not among FRONT's dependencies
        lambda ns, h: ns.call(h),  # no non_secure_clients
        PSA_ERROR_CONNECTION_REFUSED,
        "psa_call",
        "HIDDEN_HANDLE",
    ),
    "close invalid handle": Misuse(
        "psa_close(0x7770)", lambda ns, h: ns.close(0x7770), None, "psa_close"
    ),
    "close static handle": Misuse(
        "psa_close(arg)", lambda ns, h: ns.close(h), None, "psa_close", "STATELESS_HANDLE"
    ),
}


def misuse_system(spe: Spe, config: Config, misuse: Misuse) -> System:
    return spe.boot(
        config,
        echo("SFN"),
        echo("SFN", name="TFM_SP_SECRET", svc="SECRET", sid=SECRET_SID, ns=False),
        stateless_echo(),
        echo(
            "SFN",
            name="TFM_SP_HIDDEN",
            svc="HIDDEN",
            sid=HIDDEN_SID,
            ns=False,
            connection_based=False,
        ),
        front(misuse.secure + "\nreturn 0", dependencies=("ECHO", "STATELESS")),
    )


@pytest.mark.parametrize("name", list(MISUSES))
def test_misuse_by_ns_is_a_status(config: Config, spe: Spe, name: str) -> None:
    """A client-API misuse by a non-secure caller returns TF-M's status and reaches no service."""
    misuse = MISUSES[name]
    system = misuse_system(spe, config, misuse)
    handle = system.constants[misuse.handle] if misuse.handle else 0
    assert misuse.ns(system.ns_client(), handle) == misuse.ns_status
    assert system.state == "running"
    assert system.panic is None
    assert spe.log == []


@pytest.mark.parametrize("name", list(MISUSES))
def test_misuse_by_secure_caller_panics(config: Config, spe: Spe, name: str) -> None:
    """The same misuse by a secure partition halts the SPE: the NS call in flight raises Panic
    naming the partition and the API, and the system is panicked."""
    misuse = MISUSES[name]
    system = misuse_system(spe, config, misuse)
    handle = system.constants[misuse.handle] if misuse.handle else 0
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["FRONT_HANDLE"], 0, [arg(handle)])
    record = info.value.record
    assert system.state == "panicked"
    assert system.panic is record
    assert (record.partition, record.api) == ("TFM_SP_FRONT", misuse.api)
    assert record.reason
    assert spe.log == []


def test_partition_code_cannot_catch_a_panic(config: Config, spe: Spe) -> None:
    """A panic unwinds partition code even through ``except Exception``."""
    body = """
    try:
        psa_connect(0xDEAD, 1)
    except Exception:
        log.append("caught")
    return 0
    """
    system = spe.boot(config, front(body))
    with pytest.raises(Panic):
        system.ns_client().call(system.constants["FRONT_HANDLE"])
    assert spe.log == []


def test_ipc_partition_misuse_at_boot(ipc_config: Config, spe: Spe) -> None:
    """An IPC-model partition's misuse while booting makes boot() raise Panic."""
    part = ipc_partition("TFM_SP_W", "psa_connect(0xDEAD, 1)", [service("W", 0x2000)])
    system = spe.load(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.boot()
    assert (info.value.record.partition, info.value.record.api) == ("TFM_SP_W", "psa_connect")
    assert system.state == "panicked"


# ---------------------------------------------------------------- after a panic
def panicked(spe: Spe, config: Config) -> tuple[System, NsClient, int]:
    """A system with a counting stateless service and an ECHO connection, then panicked."""
    counter = sfn_service(
        """
        global count
        count = globals().get("count", 0) + 1
        return 999 if msg.type == 9 and psa_panic() else count
        """
    )
    system = spe.boot(config, counter, echo("SFN"))
    ns = system.ns_client(-5)
    handle = ns.connect(ECHO_SID, 1)
    svc = system.constants["SVC_HANDLE"]
    assert [ns.call(svc), ns.call(svc)] == [1, 2]
    with pytest.raises(Panic):
        ns.call(svc, 9)
    return system, ns, handle


def test_ns_calls_raise_panic_until_reset(config: Config, spe: Spe) -> None:
    """After a panic every NS call, from old or new clients, raises Panic with the same record."""
    system, ns, handle = panicked(spe, config)
    record = system.panic
    assert record is not None and record.api == "psa_panic"
    calls: list[Callable[[NsClient], object]] = [
        lambda c: c.framework_version(),
        lambda c: c.version(ECHO_SID),
        lambda c: c.connect(ECHO_SID, 1),
        lambda c: c.call(handle),
        lambda c: c.close(handle),
    ]
    for client in (ns, system.ns_client(-6)):
        for call in calls:
            with pytest.raises(Panic) as info:
                call(client)
            assert info.value.record is record
    assert system.state == "panicked"


def test_reset_reboots_from_scratch(config: Config, spe: Spe) -> None:
    """reset() clears the panic, reboots with fresh partition state and handles; NS client
    objects made before stay usable."""
    system, ns, old_handle = panicked(spe, config)
    system.reset()
    assert system.state == "running"
    assert system.panic is None
    svc = system.constants["SVC_HANDLE"]
    assert ns.call(svc) == 1  # the partition's module state started again
    assert ns.call(old_handle) == PSA_ERROR_PROGRAMMER_ERROR  # no connection survives
    assert system.stats["connections_in_use"] == 0
    handle = ns.connect(ECHO_SID, 1)
    assert handle > 0
    assert ns.call(handle, 3) == 3


def test_reset_of_a_running_system(config: Config, spe: Spe) -> None:
    """reset() also reboots a system that did not panic, dropping its connections."""
    system = spe.boot(config, echo("SFN"))
    ns = system.ns_client()
    ns.connect(ECHO_SID, 1)
    system.reset()
    assert system.stats["connections_in_use"] == 0


def test_counters_span_resets(config: Config, spe: Spe) -> None:
    """reset() keeps the counters (a panic is still counted after the reboot) and counts
    itself in ``resets``."""
    system = spe.boot(config, echo("SFN"), sfn_service("psa_panic()"))
    ns = system.ns_client()
    ns.connect(ECHO_SID, 1)
    with pytest.raises(Panic):
        ns.call(system.constants["SVC_HANDLE"])
    before = system.stats
    assert before["panics"] == 1 and before["resets"] == 0
    system.reset()
    after = system.stats
    assert after["panics"] == 1 and after["resets"] == 1
    assert after["messages"] >= before["messages"] and after["psa_calls"] == before["psa_calls"]
    system.reset()
    assert system.stats["resets"] == 2


# ---------------------------------------------------------------- Python exceptions
def test_exception_in_service_function(config: Config, spe: Spe) -> None:
    """A Python exception in a service function is a panic of its partition, traceback kept."""
    system = spe.boot(config, sfn_service("return 1 // 0"))
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["SVC_HANDLE"])
    record = info.value.record
    assert record.partition == "TFM_SP_SVC"
    assert "ZeroDivisionError" in record.reason
    assert record.traceback is not None
    assert "ZeroDivisionError" in record.traceback and "svc_sfn" in record.traceback
    assert system.state == "panicked"


def test_exception_in_ipc_partition(ipc_config: Config, spe: Spe) -> None:
    """A Python exception in an IPC partition's thread is a panic of that partition."""
    part = ipc_partition(
        "TFM_SP_W",
        """
        msg = psa_get(psa_wait(PSA_WAIT_ANY, PSA_BLOCK))
        {}["missing"]
        """,
        [service("W", 0x2000, connection_based=False)],
    )
    system = spe.boot(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["W_HANDLE"])
    record = info.value.record
    assert record.partition == "TFM_SP_W"
    assert record.traceback is not None and "KeyError" in record.traceback
    assert system.state == "panicked"


def test_ipc_entry_returning_panics(ipc_config: Config, spe: Spe) -> None:
    """An IPC partition's entry point must never return: returning is a panic."""
    part = ipc_partition("TFM_SP_W", "return", [service("W", 0x2000)])
    system = spe.load(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.boot()
    assert info.value.record.partition == "TFM_SP_W"


def test_panic_record_fields(config: Config, spe: Spe) -> None:
    """system.panic is the record of the Panic raised: partition, api and reason text."""
    system = spe.boot(config, sfn_service("psa_write(msg.handle, 0, b'too long')"))
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["SVC_HANDLE"], 0, [], [bytearray(2)])
    assert system.panic == info.value.record
    assert isinstance(system.panic.reason, str) and system.panic.reason
    assert str(info.value).startswith("TFM_SP_SVC: psa_write")


def test_panic_names_the_partition_function_and_keeps_its_frames(config: Config, spe: Spe) -> None:
    """A partition's exception is recorded against the partition function that was entered,
    with a traceback of partition code's own files and lines, psaspm's frames trimmed."""
    body = """
    def deeper():
        return {}["missing"]
    return deeper()
    """
    system = spe.boot(config, sfn_service(body))
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["SVC_HANDLE"])
    record = info.value.record
    assert record.api == "svc_sfn"
    assert record.traceback is not None
    assert "in svc_sfn" in record.traceback and "in deeper" in record.traceback
    assert "tfm_sp_svc.py" in record.traceback.lower()
    assert "psaspm/kernel" not in record.traceback and "sprt.py" not in record.traceback
    assert record.traceback.rstrip().endswith("KeyError: 'missing'")


def test_ipc_panic_names_the_entry_point(ipc_config: Config, spe: Spe) -> None:
    """Under IPC an IPC-model partition's exception names its entry point function."""
    part = ipc_partition(
        "TFM_SP_W",
        """
        msg = psa_get(psa_wait(PSA_WAIT_ANY, PSA_BLOCK))
        raise ValueError("bad")
        """,
        [service("W", 0x2000, connection_based=False)],
    )
    system = spe.boot(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["W_HANDLE"])
    assert info.value.record.api == "main"


def test_an_entry_point_that_returns_is_a_panic_naming_it(ipc_config: Config, spe: Spe) -> None:
    """An IPC-model partition's entry point function returning is a panic of that
    partition, recorded against the function by its manifest name."""
    part = ipc_partition(
        "TFM_SP_W",
        "psa_get(psa_wait(PSA_WAIT_ANY, PSA_BLOCK))",
        [service("W", 0x2000, connection_based=False)],
    )
    system = spe.boot(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["W_HANDLE"])
    assert (info.value.record.partition, info.value.record.api) == ("TFM_SP_W", "main")
    assert "entry function returned" in info.value.record.reason
