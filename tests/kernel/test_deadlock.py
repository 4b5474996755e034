"""Deadlock: when every secure thread is blocked and nothing can wake one, the SPE halts with
psaspm.Deadlock (a Panic) naming who waits for what."""

from __future__ import annotations

import pytest

from psaspm import Deadlock, Panic

from .support import Config, Spe, arg, front, ipc_partition, service, sfn_service

STUCK_SERVER = """
msg = psa_get(psa_wait(PSA_WAIT_ANY, PSA_BLOCK))
log.append("got")
psa_wait(PSA_DOORBELL, PSA_BLOCK)  # nobody ever rings
"""


def test_deadlock_is_a_panic() -> None:
    """Deadlock is a subclass of Panic, so code handling panics handles deadlocks."""
    assert issubclass(Deadlock, Panic)


def test_server_waiting_forever(ipc_config: Config, spe: Spe) -> None:
    """A service that takes a message and then waits for a signal nobody asserts deadlocks
    the NS call; the report names the waiting partition and the NS agent waiting for its reply."""
    part = ipc_partition("TFM_SP_STUCK", STUCK_SERVER, [service("STUCK", 0x2000)])
    system = spe.boot(ipc_config, part)
    with pytest.raises(Deadlock) as info:
        system.ns_client().connect(0x2000, 1)
    reason = info.value.record.reason
    assert "TFM_SP_STUCK waits for signals 0x8" in reason
    assert "NS waits for the reply" in reason
    assert system.state == "panicked"
    assert system.panic is info.value.record
    assert spe.log == ["got"]


def test_chain_of_waiters(ipc_config: Config, spe: Spe) -> None:
    """A partition calling a service whose partition waits forever: both appear in the report."""
    system = spe.boot(
        ipc_config,
        ipc_partition(
            "TFM_SP_STUCK",
            STUCK_SERVER,
            [service("STUCK", 0x2000, connection_based=False, ns=False)],
        ),
        front("return psa_call(arg, 0, [], [])", dependencies=("STUCK",)),
    )
    with pytest.raises(Deadlock) as info:
        system.ns_client().call(
            system.constants["FRONT_HANDLE"], 0, [arg(system.constants["STUCK_HANDLE"])]
        )
    reason = info.value.record.reason
    assert "TFM_SP_FRONT waits for the reply" in reason
    assert "TFM_SP_STUCK waits for signals" in reason


def test_partition_stuck_at_boot(ipc_config: Config, spe: Spe) -> None:
    """A partition that, while booting, calls a service whose partition never takes messages
    is stuck but the NS side still runs; the first NS call that needs it deadlocks."""
    system = spe.boot(
        ipc_config,
        ipc_partition(
            "TFM_SP_CALLER",
            "psa_connect(0x2000, 1)",
            [service("CALLER", 0x2100, connection_based=False)],
            priority="HIGH",
            dependencies=("DEAF",),
        ),
        ipc_partition(
            "TFM_SP_DEAF",
            "while True:\n    psa_wait(PSA_DOORBELL, PSA_BLOCK)",
            [service("DEAF", 0x2000, ns=False)],
        ),
    )
    assert system.state == "running"
    with pytest.raises(Deadlock) as info:
        system.ns_client().call(system.constants["CALLER_HANDLE"])
    reason = info.value.record.reason
    assert "TFM_SP_CALLER waits for the reply" in reason
    assert "TFM_SP_DEAF waits for signals 0x8" in reason
    assert "NS waits for the reply" in reason


def test_sfn_backend_wait_without_interrupts(spe: Spe) -> None:
    """Under the SFN backend only interrupts assert signals: a psa_wait that nothing can
    satisfy deadlocks instead of spinning forever."""
    system = spe.boot(Config("sfn", 1), sfn_service("psa_wait(PSA_WAIT_ANY, PSA_BLOCK)"))
    with pytest.raises(Deadlock) as info:
        system.ns_client().call(system.constants["SVC_HANDLE"])
    assert "TFM_SP_SVC" in str(info.value)
    assert system.state == "panicked"
