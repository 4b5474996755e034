"""Time passes while the SPE waits (contract section 7): with every secure thread blocked
and an armed timer, platform time advances to its next event and its interrupt is taken;
a deadlock is reported only when nothing can fire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import psaspm
from psaspm import Deadlock
from psaspm.psa import PSA_SUCCESS

from . import timer_partitions
from .support import CONFIGS, boot_irq_test


@pytest.fixture
def partitions() -> Iterator[ModuleType]:
    timer_partitions.LOG.clear()
    yield timer_partitions


def _boot(shared_dir: Path, kind: str, backend: str, isolation: int) -> psaspm.System:
    return boot_irq_test(shared_dir, kind, backend, isolation, timer_partitions)


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_slih_timer_fires_while_the_spe_waits(
    shared_dir: Path, partitions: ModuleType, backend: str, isolation: int
) -> None:
    """A SLIH test case that arms the timer and blocks in psa_wait completes without
    system.tick: the SPE sleeps until the timer's event, whose interrupt wakes it."""
    system = _boot(shared_dir, "slih", backend, isolation)
    status = system.ns_client().call(system.constants["TFM_SLIH_TEST_CASE_HANDLE"])
    assert status == PSA_SUCCESS
    assert partitions.LOG == ["woken 0x80000000"]
    assert system.stats["interrupts"] == 1
    assert system.device("TFM_PERIPHERAL_TIMER0").read32(0x0) == 0  # stopped again


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_flih_timer_fires_repeatedly_while_the_spe_waits(
    shared_dir: Path, partitions: ModuleType, backend: str, isolation: int
) -> None:
    """Expiries whose FLIH returns PSA_FLIH_NO_SIGNAL wake nobody: time advances again to
    the next one, until the FLIH signals."""
    system = _boot(shared_dir, "flih", backend, isolation)
    status = system.ns_client().call(system.constants["TFM_FLIH_TEST_CASE_HANDLE"])
    assert status == PSA_SUCCESS
    assert partitions.LOG == ["flih 1", "flih 2", "flih 3", "woken 0x80000000"]
    assert system.stats["interrupts"] == 3


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_time_advances_by_the_timer_period(
    shared_dir: Path, partitions: ModuleType, backend: str, isolation: int
) -> None:
    """The SPE sleeps exactly until the next event: after the SLIH case (the partition stops
    the timer once it is woken) the timer has counted one whole period and reloaded, not
    a tick more."""
    system = _boot(shared_dir, "slih", backend, isolation)
    system.ns_client().call(system.constants["TFM_SLIH_TEST_CASE_HANDLE"])
    timer = system.device("TFM_PERIPHERAL_TIMER0")
    assert timer.read32(0x4) == timer_partitions.RELOAD  # reloaded at the expiry


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_waiting_with_nothing_armed_is_a_deadlock(
    shared_dir: Path,
    partitions: ModuleType,
    backend: str,
    isolation: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the timer never armed, nothing can fire: the wait is reported as a deadlock."""
    monkeypatch.setattr(timer_partitions, "_arm", lambda: None)
    system = _boot(shared_dir, "slih", backend, isolation)
    with pytest.raises(Deadlock) as info:
        system.ns_client().call(system.constants["TFM_SLIH_TEST_CASE_HANDLE"])
    assert info.value.record.partition in ("TFM_SP_SLIH_TEST", "NS")
    assert "deadlock" in info.value.record.reason


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_hal_wfi_advances_time_to_the_next_event(
    shared_dir: Path,
    partitions: ModuleType,
    backend: str,
    isolation: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psaspm.hal.wfi() (``__WFI()``) sleeps until the next armed device event and takes its
    interrupt, so a partition busy-waiting on a flag its FLIH sets makes progress."""
    monkeypatch.setattr(timer_partitions, "BUSY_WAIT", True)
    system = _boot(shared_dir, "flih", backend, isolation)
    status = system.ns_client().call(system.constants["TFM_FLIH_TEST_CASE_HANDLE"])
    assert status == PSA_SUCCESS
    assert partitions.LOG == ["flih 1", "flih 2", "flih 3", "woken 0x80000000"]


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_hal_wfi_with_nothing_armed_is_a_deadlock(
    shared_dir: Path,
    partitions: ModuleType,
    backend: str,
    isolation: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psaspm.hal.wfi() with no interrupt pending and no armed device is a deadlock."""
    monkeypatch.setattr(timer_partitions, "BUSY_WAIT", True)
    monkeypatch.setattr(timer_partitions, "_arm", lambda: None)
    system = _boot(shared_dir, "flih", backend, isolation)
    with pytest.raises(Deadlock) as info:
        system.ns_client().call(system.constants["TFM_FLIH_TEST_CASE_HANDLE"])
    assert info.value.record.api == "wfi"
    assert info.value.record.partition == "TFM_SP_FLIH_TEST"
