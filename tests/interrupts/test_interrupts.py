"""FLIH and SLIH interrupts under both backends, with tf-m-tests' own test manifests."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import psaspm
from psaspm.kernel.instruments import EventLog

from . import irq_partitions
from .support import CONFIGS, IRQ_DIR, boot_irq_test


@pytest.fixture
def partitions() -> Iterator[ModuleType]:
    irq_partitions.LOG.clear()
    yield irq_partitions


def _test_partition(shared_dir: Path, kind: str, backend: str, isolation: int) -> psaspm.System:
    return boot_irq_test(shared_dir, kind, backend, isolation, irq_partitions)


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_slih_signal_wakes_partition(
    shared_dir: Path, partitions: ModuleType, backend: str, isolation: int
) -> None:
    """A SLIH interrupt asserts the partition's IRQ signal, which psa_wait returns; psa_eoi acknowledges it."""
    system = _test_partition(shared_dir, "slih", backend, isolation)
    status = system.ns_client().call(system.constants["TFM_SLIH_TEST_CASE_HANDLE"])
    assert status == psaspm.psa.PSA_SUCCESS
    assert partitions.LOG == ["timer start", "woken 0x80000000"]
    assert system.stats["interrupts"] == 1


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_flih_runs_at_once_then_signals(
    shared_dir: Path, partitions: ModuleType, backend: str, isolation: int
) -> None:
    """A FLIH runs as soon as the line rises; returning PSA_FLIH_SIGNAL asserts the signal, cleared by psa_reset_signal."""
    system = _test_partition(shared_dir, "flih", backend, isolation)
    status = system.ns_client().call(system.constants["TFM_FLIH_TEST_CASE_HANDLE"])
    assert status == psaspm.psa.PSA_SUCCESS
    assert partitions.LOG == ["timer start", "flih", "woken 0x80000000"]
    assert system.stats["interrupts"] == 1


@pytest.mark.parametrize(("backend", "isolation"), CONFIGS)
def test_sources_start_disabled(
    shared_dir: Path, partitions: ModuleType, backend: str, isolation: int
) -> None:
    """An FF-M 1.1 partition's interrupt source is disabled until it calls psa_irq_enable."""
    system = _test_partition(shared_dir, "flih", backend, isolation)
    system.assert_irq("TFM_TIMER0_IRQ")
    assert system.stats["interrupts"] == 0
    assert partitions.LOG == []
    # Enabling it with the line still high takes it at once: the FLIH clears the line.
    status = system.ns_client().call(system.constants["TFM_FLIH_TEST_CASE_HANDLE"])
    assert status == psaspm.psa.PSA_SUCCESS
    assert partitions.LOG[0] == "flih"


def test_one_source_cannot_have_two_owners(shared_dir: Path, partitions: ModuleType) -> None:
    """Both tf-m-tests partitions bind TFM_TIMER0_IRQ: loaded together they are refused, naming
    both partitions and the source (stricter than TF-M's tool, which accepts it)."""
    base = shared_dir / "tfm-manifests" / IRQ_DIR
    with pytest.raises(psaspm.ManifestError) as caught:
        psaspm.load(
            [
                base / "tfm_slih_test_service/tfm_slih_test_service.yaml",
                base / "tfm_flih_test_service/tfm_flih_test_service.yaml",
            ],
            code={"TFM_SP_SLIH_TEST": irq_partitions, "TFM_SP_FLIH_TEST": irq_partitions},
        )
    message = str(caught.value)
    assert "partition TFM_SP_FLIH_TEST: irqs[0].source" in message
    assert "TFM_TIMER0_IRQ is already bound by partition TFM_SP_SLIH_TEST" in message


def test_unknown_source_is_a_clear_error(shared_dir: Path, partitions: ModuleType) -> None:
    """Driving a source no partition binds is an error naming the source, and the system keeps running."""
    system = _test_partition(shared_dir, "slih", "ipc", 1)
    with pytest.raises(psaspm.ConfigError, match="NO_SUCH_IRQ"):
        system.assert_irq("NO_SUCH_IRQ")
    assert system.state == "running"


# ----------------------------------------------------------------- custom systems
DEVICE_MANIFEST = """
{{
  "psa_framework_version": 1.1, "name": "{name}", "type": "{type}",
  "priority": "{priority}", "model": "IPC", "entry_point": "main", "stack_size": "0x400",
  "services": [{{"name": "{svc}", "sid": "{sid}", "non_secure_clients": true,
                 "connection_based": false, "version": 1}}],
  "irqs": [{irqs}]
}}
"""


def _write(tmp: Path, name: str, code: str, **fields: str) -> Path:
    fields.setdefault("type", "PSA-ROT")
    fields.setdefault("priority", "NORMAL")
    fields.setdefault("irqs", "")
    path = tmp / f"{name.lower()}.yaml"
    path.write_text(DEVICE_MANIFEST.format(name=name, **fields))
    path.with_suffix(".py").write_text(textwrap.dedent(code))
    return path


HANDLER = """
from psaspm.psa import *
from psaspm import hal
import psaspm
LOG = []
def main():
    psa_irq_enable(DEV_IRQ_SIGNAL)
    while True:
        sig = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        if sig & DEV_IRQ_SIGNAL:
            LOG.append("handler: irq")
            hal.deassert_irq("DEV_IRQ")
            psa_eoi(DEV_IRQ_SIGNAL)
        if sig & 0x10:
            msg = psa_get(0x10)
            psa_reply(msg.handle, len(LOG))

DEV_IRQ_SIGNAL = 0x80000000
"""

DRIVER = """
from psaspm.psa import *
from psaspm import hal
LOG = None
def main():
    while True:
        psa_wait(0x10, PSA_BLOCK)
        msg = psa_get(0x10)
        LOG.append("driver: before")
        hal.assert_irq("DEV_IRQ")
        LOG.append("driver: after")
        psa_reply(msg.handle, PSA_SUCCESS)
"""


@pytest.mark.parametrize("isolation", [1, 2, 3])
def test_woken_higher_priority_thread_runs_before_interrupted_one(
    tmp_path: Path, isolation: int
) -> None:
    """A higher-priority thread woken by an interrupt runs before the interrupted partition code resumes."""
    handler = _write(
        tmp_path,
        "TFM_SP_HANDLER",
        HANDLER,
        svc="HANDLER",
        sid="0x2000",
        priority="HIGH",
        irqs='{"source": "DEV_IRQ", "name": "DEV_IRQ", "handling": "SLIH"}',
    )
    driver = _write(tmp_path, "TFM_SP_DRIVER", DRIVER, svc="DRIVER", sid="0x2010", priority="LOW")
    system = psaspm.load([handler, driver], isolation=isolation)
    system.boot()
    handler_code = system.partition_code("TFM_SP_HANDLER")
    driver_code = system.partition_code("TFM_SP_DRIVER")
    log: list[str] = []
    for module in (handler_code, driver_code):
        setattr(module, "LOG", log)  # noqa: B010 - partition code is loaded at boot
    assert system.ns_client().call(system.constants["DRIVER_HANDLE"]) == 0
    assert log == ["driver: before", "handler: irq", "driver: after"]


SELF_RETRIGGER = """
from psaspm.psa import *
from psaspm import hal
def main():
    psa_irq_enable(0x80000000)
    handled = 0
    while True:
        sig = psa_wait(PSA_WAIT_ANY, PSA_BLOCK)
        if sig & 0x80000000:
            handled += 1
            if handled >= 2:
                hal.deassert_irq("DEV_IRQ")
            psa_eoi(0x80000000)   # the line may still be high: taken again
        if sig & 0x10:
            msg = psa_get(0x10)
            psa_reply(msg.handle, PSA_SUCCESS)
"""


@pytest.mark.parametrize(("isolation", "where"), [(1, "spm"), (2, "svc-exit"), (3, "svc-exit")])
def test_preemption_follows_interface(tmp_path: Path, isolation: int, where: str) -> None:
    """An interrupt arising inside the SPM preempts it under a cross call but waits for the SVC to return under SVC."""
    path = _write(
        tmp_path,
        "TFM_SP_RETRIGGER",
        SELF_RETRIGGER,
        svc="RETRIGGER",
        sid="0x2020",
        irqs='{"source": "DEV_IRQ", "name": "DEV_IRQ", "handling": "SLIH"}',
    )
    log = EventLog()
    system = psaspm.load(path, isolation=isolation, tracer=log)
    system.boot()
    log.events.clear()
    system.assert_irq("DEV_IRQ")  # taken in NS thread code, handled; psa_eoi re-takes it
    events = [
        e for e in log.events if e[0] in ("enter", "exit", "interrupt") and e[-1] != "psa_wait"
    ]
    eoi = events.index(("enter", "TFM_SP_RETRIGGER", "psa_eoi"))
    assert events[0] == ("interrupt", "DEV_IRQ", "TFM_SP_RETRIGGER", "SLIH", "thread")
    assert events[eoi + 1] == ("interrupt", "DEV_IRQ", "TFM_SP_RETRIGGER", "SLIH", where)
    assert system.stats["interrupts"] == 2


@pytest.mark.parametrize(
    ("code", "api"),
    [
        ("psa_eoi(0x80000000)", "psa_eoi"),  # not asserted
        ("psa_irq_enable(0x10)", "psa_irq_enable"),  # a service signal, not an IRQ
        ("psa_irq_enable(0xC0000000)", "psa_irq_enable"),  # two bits
        ("psa_reset_signal(0x80000000)", "psa_reset_signal"),  # a SLIH source
    ],
)
def test_irq_api_misuse_panics(tmp_path: Path, code: str, api: str) -> None:
    """Misusing the interrupt API (wrong, several or unasserted signals; the wrong handling's call) is a programmer error: a panic."""
    path = _write(
        tmp_path,
        "TFM_SP_MISUSE",
        f"""
        from psaspm.psa import *
        def main():
            while True:
                psa_wait(0x10, PSA_BLOCK)
                msg = psa_get(0x10)
                {code}
                psa_reply(msg.handle, PSA_SUCCESS)
        """,
        svc="MISUSE",
        sid="0x2030",
        irqs='{"source": "DEV_IRQ", "name": "DEV_IRQ", "handling": "SLIH"}',
    )
    system = psaspm.load(path)
    system.boot()
    with pytest.raises(psaspm.Panic) as info:
        system.ns_client().call(system.constants["MISUSE_HANDLE"])
    assert info.value.record.partition == "TFM_SP_MISUSE"
    assert info.value.record.api == api
    assert system.state == "panicked"


@pytest.mark.parametrize(("isolation", "switches"), [(1, 0), (2, 4), (3, 4)])
def test_flih_runs_in_its_owners_boundary(
    shared_dir: Path, partitions: ModuleType, isolation: int, switches: int
) -> None:
    """A FLIH taken in NS code runs in its App-RoT owner's boundary: a switch in and out, beyond level 1."""
    system = _test_partition(shared_dir, "flih", "ipc", isolation)
    assert system.ns_client().call(system.constants["TFM_FLIH_TEST_CASE_HANDLE"]) == 0
    before = system.stats["boundary_switches"]
    system.assert_irq("TFM_TIMER0_IRQ")  # the source stayed enabled after the test case
    # The FLIH (in and out of the owner's boundary), then the owner's thread acknowledging it.
    assert partitions.LOG[-2:] == ["flih", "stray"]
    assert system.stats["boundary_switches"] - before == switches
