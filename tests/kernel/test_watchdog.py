"""The watchdog (contract section 12) and the stuck psa_wait: partition code that runs
away halts the SPE with a clear record instead of hanging the host."""

from __future__ import annotations

import pytest

from psaspm import Panic
from psaspm.errors import ConfigError

from .support import Config, Spe, ipc_partition, service, sfn_service

LOOP = """
n = 0
while True:
    try:
        n += 1
    except Exception:
        pass
"""


def test_watchdog_halts_a_looping_service(spe: Spe, config: Config) -> None:
    """A service that loops forever is stopped after the watchdog's time: a panic with
    api "watchdog" naming the partition and the file and line it was running."""
    system = spe.boot(config, sfn_service(LOOP), watchdog=0.3)
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["SVC_HANDLE"])
    record = info.value.record
    assert record.api == "watchdog"
    assert record.partition == "TFM_SP_SVC"
    assert "ran for more than 0.3 s" in record.reason
    assert ".py:" in record.reason and "in svc_sfn" in record.reason
    assert system.state == "panicked"
    system.reset()  # and the system goes on
    assert system.state == "running"


def test_watchdog_halts_a_looping_ipc_thread(spe: Spe, ipc_config: Config) -> None:
    """An IPC partition thread that loops instead of waiting is stopped the same way."""
    part = ipc_partition(
        "TFM_SP_SPIN",
        "msg = psa_get(psa_wait(PSA_WAIT_ANY, PSA_BLOCK))\n" + LOOP,
        [service("SPIN", 0x2000, connection_based=False)],
    )
    system = spe.boot(ipc_config, part, watchdog=0.3)
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["SPIN_HANDLE"])
    assert info.value.record.api == "watchdog"
    assert info.value.record.partition == "TFM_SP_SPIN"


def test_watchdog_leaves_many_short_calls_alone(spe: Spe, config: Config) -> None:
    """Calls that each return quickly never trip the watchdog, however long they add up to."""
    system = spe.boot(config, sfn_service("return 0"), watchdog=0.1)
    ns = system.ns_client()
    handle = system.constants["SVC_HANDLE"]
    import time

    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        assert ns.call(handle) == 0
    assert system.state == "running"


def test_watchdog_must_be_positive(spe: Spe, config: Config) -> None:
    """A watchdog of zero or less seconds is a ConfigError naming the value."""
    with pytest.raises(ConfigError, match="-1"):
        spe.load(config, sfn_service("return 0"), watchdog=-1)


def test_busy_psa_wait_without_psa_get_is_stuck(spe: Spe, ipc_config: Config) -> None:
    """A partition that keeps calling psa_wait while a message waits, never taking it with
    psa_get, is stuck: a panic in psa_wait that says so."""
    part = ipc_partition(
        "TFM_SP_BUSY",
        "while True:\n    psa_wait(PSA_WAIT_ANY, PSA_BLOCK)",
        [service("BUSY", 0x2000, connection_based=False)],
    )
    system = spe.boot(ipc_config, part)
    with pytest.raises(Panic) as info:
        system.ns_client().call(system.constants["BUSY_HANDLE"])
    record = info.value.record
    assert (record.partition, record.api) == ("TFM_SP_BUSY", "psa_wait")
    assert "without psa_get" in record.reason
