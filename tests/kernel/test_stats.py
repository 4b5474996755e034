"""system.stats (contract section 8): counters since boot, per backend and interface."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from psaspm.system import System

from .support import ECHO_SID, Config, Spe, echo, echo_ipc, stateless_echo


def delta(system: System, action: Callable[[], object]) -> dict[str, int]:
    before = system.stats
    action()
    after = system.stats
    return {key: after[key] - before[key] for key in before}


def test_stats_has_the_contract_counters(config: Config, spe: Spe) -> None:
    """stats holds at least psa_calls, messages, context_switches, svc_entries,
    boundary_switches and interrupts, as ints."""
    system = spe.boot(config, echo("SFN"))
    stats = system.stats
    for key in (
        "psa_calls",
        "messages",
        "context_switches",
        "svc_entries",
        "boundary_switches",
        "interrupts",
    ):
        assert isinstance(stats[key], int)


def test_messages_and_calls_counted(config: Config, spe: Spe) -> None:
    """Each message delivered counts in messages; each psa_call in psa_calls."""
    system = spe.boot(config, echo("SFN"))
    ns = system.ns_client()

    def session() -> None:
        handle = ns.connect(ECHO_SID, 1)
        ns.call(handle)
        ns.call(handle)
        ns.close(handle)

    moved = delta(system, session)
    assert moved["messages"] == 4
    assert moved["psa_calls"] == 2


def test_sfn_backend_call_makes_no_context_switch(spe: Spe) -> None:
    """Under the SFN backend a call is a function call: no context switch, SVC or boundary."""
    system = spe.boot(Config("sfn", 1), stateless_echo(type="APPLICATION-ROT"))
    handle = system.constants["STATELESS_HANDLE"]
    moved = delta(system, lambda: system.ns_client().call(handle, 0, [b"x"], [bytearray(1)]))
    assert moved["messages"] == 1
    assert (moved["context_switches"], moved["svc_entries"], moved["boundary_switches"]) == (
        0,
        0,
        0,
    )


@pytest.mark.parametrize("model", ["IPC", "SFN"])
def test_ipc_call_switches_twice(ipc_config: Config, spe: Spe, model: str) -> None:
    """Under the IPC backend an NS call to a service makes exactly two context switches:
    NS -> service thread -> NS (connect, call and close alike)."""
    system = spe.boot(ipc_config, echo(model))
    ns = system.ns_client()
    handle = 0

    def connect() -> None:
        nonlocal handle
        handle = ns.connect(ECHO_SID, 1)

    assert delta(system, connect)["context_switches"] == 2
    for _ in range(3):
        assert (
            delta(system, lambda: ns.call(handle, 0, [b"abc"], [bytearray(3)]))["context_switches"]
            == 2
        )
    assert delta(system, lambda: ns.close(handle))["context_switches"] == 2


def test_svc_entries_only_at_levels_2_and_3(config: Config, spe: Spe) -> None:
    """PSA API calls enter the SPM by SVC only at isolation levels 2 and 3."""
    system = spe.boot(config, echo("SFN"))
    moved = delta(system, lambda: system.ns_client().connect(ECHO_SID, 1))
    if config.isolation >= 2:
        assert moved["svc_entries"] > 0
    else:
        assert moved["svc_entries"] == 0


def test_svc_entries_count_partition_api_calls(ipc_config: Config, spe: Spe) -> None:
    """At levels 2 and 3 an IPC echo's psa_wait, psa_get, psa_read, psa_write and psa_reply
    are each at least one SVC entry."""
    system = spe.boot(ipc_config, echo_ipc())
    ns = system.ns_client()
    handle = ns.connect(ECHO_SID, 1)
    moved = delta(system, lambda: ns.call(handle, 0, [b"abc"], [bytearray(3)]))
    assert moved["svc_entries"] >= (5 if ipc_config.isolation >= 2 else 0)
    if ipc_config.isolation == 1:
        assert moved["svc_entries"] == 0


@pytest.mark.parametrize("kind", ["APPLICATION-ROT", "PSA-ROT"])
def test_boundary_switches(config: Config, spe: Spe, kind: str) -> None:
    """Running an APPLICATION-ROT partition switches the isolation boundary at levels 2 and 3;
    level 1 and PSA-ROT partitions (privileged, like the NS agent) never do."""
    system = spe.boot(config, echo("SFN", type=kind))
    moved = delta(system, lambda: system.ns_client().connect(ECHO_SID, 1))
    if config.isolation >= 2 and kind == "APPLICATION-ROT":
        assert moved["boundary_switches"] > 0
    else:
        assert moved["boundary_switches"] == 0


@pytest.mark.parametrize("isolation", [2, 3])
def test_svc_numbers_dispatch_and_unknown_ones_fail_cleanly(spe: Spe, isolation: int) -> None:
    """The SVC handler dispatches by number (counting the entry); an unknown number returns
    PSA_ERROR_GENERIC_ERROR and changes nothing."""
    from psaspm.consts import PSA_ERROR_GENERIC_ERROR, PSA_FRAMEWORK_VERSION
    from psaspm.kernel._generated_api import Svc
    from psaspm.kernel.interfaces import svc_handler

    system = spe.boot(Config("ipc", isolation), echo("SFN"))
    assert system._kernel is not None
    iface = system._kernel.iface  # the raw SVC entry point
    assert iface.name == "svc"
    before = system.stats
    assert svc_handler(iface, Svc.FRAMEWORK_VERSION) == PSA_FRAMEWORK_VERSION
    assert svc_handler(iface, Svc.VERSION, ECHO_SID) == 1
    assert system.stats["svc_entries"] == before["svc_entries"] + 2
    for number in (-1, len(Svc), 0x1000, "psa_call"):
        assert svc_handler(iface, number) == PSA_ERROR_GENERIC_ERROR  # type: ignore[arg-type]
    assert system.stats["svc_entries"] == before["svc_entries"] + 2
    assert system.state == "running"
